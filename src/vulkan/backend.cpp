#include "core/text.h"
#include "vulkan/backend.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <map>
#include <mutex>

#include "core/error.h"
#include "vulkan/context.h"
#include "vulkan/ops.h"
#include "vulkan/ops_int8.h"
#include "vulkan/ops_mla.h"
#include "vulkan/ops_moe.h"
#include "vulkan/sequence.h"

namespace yiti::vk {

namespace {

// One opened device, shared by the weights placed there, the KV storage and the backends.
struct SharedDevice {
    int index = 0;
    std::unique_ptr<Context> ctx;
    std::recursive_mutex mu;  // a pass (or an upload) holds it
};

std::mutex g_devices_mu;
std::map<int, std::weak_ptr<SharedDevice>> g_devices;

std::shared_ptr<SharedDevice> shared_device(int index) {
    std::lock_guard<std::mutex> lk(g_devices_mu);
    if (auto d = g_devices[index].lock()) return d;
    auto d = std::make_shared<SharedDevice>();
    d->index = index;
    d->ctx = Context::create(index);
    g_devices[index] = d;
    return d;
}

Device vulkan(int index) { return Device{DeviceKind::Vulkan, index}; }

BufferView view(const runtime::Act& a) { return BufferView{(VkBuffer)a.buffer, a.offset, (uint64_t)a.n * 4}; }
BufferView view(const runtime::Act& a, int64_t n) {
    YITI_ASSERT(n <= a.n);
    return BufferView{(VkBuffer)a.buffer, a.offset, (uint64_t)n * 4};
}

// A weight in device memory: a matrix, stacked experts or a vector.
struct Weights final : PreparedWeights {
    std::shared_ptr<SharedDevice> dev;
    Matrix m;   // 2-D
    Experts e;  // 3-D
    Buffer vec; // 1-D F32
    int dims = 0;
};

const Weights& weights_of(const Tensor& t, const Device& d) {
    const Weights* w = dynamic_cast<const Weights*>(t.prepared);
    if (!w || !(t.device == d))
        throw Error(strprintf("tensor '%s' is not on %s", t.name.c_str(), d.name().c_str()));
    return *w;
}

struct KVStore final : kv::DeviceStorage {
    std::shared_ptr<SharedDevice> dev;
    KVStorage st;
    uint64_t n_bytes = 0;
    Device device() const override { return vulkan(dev->index); }
    size_t bytes() const override { return n_bytes; }
};

// Device scratch for a pass: buffers handed out back to back; after a pass that needed more than
// the first one, one buffer of the total (within a binding) replaces them.
class DeviceArena {
public:
    explicit DeviceArena(Context& ctx) : ctx_(ctx), max_(max_bytes(ctx)), book_((int64_t)(max_ / 256)) {}
    BufferView alloc(uint64_t bytes) {
        bytes = (bytes + 255) / 256 * 256;
        if (bytes > max_)
            throw Error(strprintf("%s: a pass needs a buffer of %llu bytes, more than one binding holds (%llu)",
                                  ctx_.name().c_str(), (unsigned long long)bytes, (unsigned long long)max_));
        const auto [chunk, off] = book_.take((int64_t)(bytes / 256), (4 << 20) / 256, [&](int64_t cap) {
            bufs_.push_back(ctx_.alloc((uint64_t)cap * 256, "activations"));
        });
        return bufs_[chunk].view((uint64_t)off * 256, bytes);
    }
    void reset() {
        if (const int64_t want = book_.reset()) {
            bufs_.clear();
            bufs_.push_back(ctx_.alloc((uint64_t)want * 256, "activations"));
        }
    }
    runtime::ArenaBook::Mark mark() const { return book_.mark(); }
    void rewind(const runtime::ArenaBook::Mark& m) { book_.rewind(m); }

private:
    static uint64_t max_bytes(const Context& ctx) {
        const Limits& l = ctx.limits();
        return std::min<uint64_t>(std::min(l.max_storage_range, l.max_alloc), 1ull << 30) / 256 * 256;
    }
    Context& ctx_;
    uint64_t max_;
    std::vector<Buffer> bufs_;
    runtime::ArenaBook book_;  // in units of 256 bytes
};

class VulkanBackend final : public runtime::Backend {
public:
    VulkanBackend(std::shared_ptr<SharedDevice> dev, bool exact)
        : dev_(std::move(dev)), ctx_(*dev_->ctx), exact_(exact), seq_(ctx_), arena_(ctx_) {}
    ~VulkanBackend() override {
        if (lock_.owns_lock()) {
            try {
                seq_.run();
            } catch (...) {
            }
            lock_.unlock();
        }
    }

    Device device() const override { return vulkan(dev_->index); }

    void begin_pass() override {
        lock_ = std::unique_lock<std::recursive_mutex>(dev_->mu);
        arena_.reset();
    }
    void end_pass() override {
        struct Unlock {
            std::unique_lock<std::recursive_mutex>& l;
            ~Unlock() {
                if (l.owns_lock()) l.unlock();
            }
        } unlock{lock_};
        seq_.run();
    }

    runtime::ArenaBook::Mark arena_mark() const override { return arena_.mark(); }
    void arena_rewind(const runtime::ArenaBook::Mark& m) override { arena_.rewind(m); }
    runtime::Act alloc(int64_t n) override {
        const BufferView v = arena_.alloc((uint64_t)std::max<int64_t>(n, 1) * 4);
        runtime::Act a;
        a.device = device();
        a.buffer = (uint64_t)v.buffer;
        a.offset = v.offset;
        a.n = n;
        return a;
    }
    void upload(const runtime::Act& dst, const float* src, int64_t n) override {
        seq_.upload(view(dst, n), src, (uint64_t)n * 4);
    }
    void download(const runtime::Act& src, float* dst, int64_t n) override {
        seq_.download(view(src, n), dst, (uint64_t)n * 4);
    }
    void sync() override { seq_.run(); }

    void get_rows(const Tensor& w, const int32_t* ids, int64_t n, const runtime::Act& out) override {
        const runtime::Act ids_dev = alloc(n);
        vk::get_rows(seq_, weights_of(w, device()).m, ids, n, view(ids_dev), view(out));
    }
    void rms_norm(const runtime::Act& x, int64_t ld_x, const Tensor& w, int64_t n, int64_t E, float eps,
                  const runtime::Act& out, int64_t ld_out) override {
        vk::rms_norm(seq_, view(x), vec(w), E, n, eps, view(out), ld_x, ld_out);
    }
    void add(const runtime::Act& x, const runtime::Act& y, int64_t n) override {
        vk::add(seq_, view(x, n), view(y, n), n, view(x, n));
    }
    void add_bias(const runtime::Act& x, const Tensor& b, int64_t rows, int64_t dim) override {
        vk::add(seq_, view(x, rows * dim), vec(b), rows * dim, view(x, rows * dim), dim);
    }
    void rope(const cpu::RopeParams& p, const runtime::Act& x, int64_t rows, int heads, int64_t head_stride,
              const int32_t* pos) override {
        const runtime::Act pos_dev = alloc(rows);
        vk::rope(seq_, p, view(x), rows, heads, head_stride, pos, view(pos_dev));
    }
    void silu_mul(const runtime::Act& g, const runtime::Act& u, int64_t n) override {
        vk::silu_mul(seq_, view(g, n), view(u, n), n, view(g, n));
    }
    void copy_strided(const runtime::Act& src, const runtime::Act& dst, int64_t n0, int64_t n1, int64_t len,
                      int64_t s0, int64_t s1, int64_t d0, int64_t d1) override {
        vk::copy_strided(seq_, view(src), view(dst), n0, n1, len, s0, s1, d0, d1);
    }

    void matmul_jobs(const runtime::Job* jobs, size_t n_jobs) override {
        q8_of_.n = 0;  // products in one list that share their input quantize it once
        for (size_t j = 0; j < n_jobs; ++j) product(jobs[j]);
    }
    void matmul_glu_jobs(const runtime::Job* jobs, size_t n_jobs) override {
        q8_of_.n = 0;
        for (size_t j = 0; j + 1 < n_jobs; j += 2) {
            product(jobs[j]);
            product(jobs[j + 1]);
            const int64_t n = jobs[j].n_tokens * jobs[j].w->ne[1];
            vk::silu_mul(seq_, view(jobs[j].y, n), view(jobs[j + 1].y, n), n, view(jobs[j].y, n));
        }
    }
    void mul_mat_batched(const Tensor& w, int64_t row0, int64_t rows, int64_t stride, int64_t n_mats,
                         const runtime::Act& x, int64_t n_cols, const runtime::Act& y) override {
        const Weights& W = weights_of(w, device());
        YITI_ASSERT(W.dims == 2);
        vk::mul_mat_batched(seq_, W.m, w.view_row0 + row0, rows, stride, n_mats, view(x), n_cols, view(y));
    }

    void moe(const runtime::MoeArgs& a) override {
        const Weights& G = weights_of(*a.gate_exps, device());
        const Weights& U = weights_of(*a.up_exps, device());
        const Weights& D = weights_of(*a.down_exps, device());
        const int n_expert = (int)a.gate_exps->ne[2];
        const int k = a.router.k;
        const int64_t T = a.n_tok, E = a.gate_exps->ne[0], F = a.gate_exps->ne[1];
        RouteParams rp;
        rp.sigmoid = a.router.sigmoid;
        rp.k = k;
        rp.renorm = a.router.renorm;
        rp.scale = a.router.scale;
        rp.n_groups = a.router.n_groups;
        rp.n_groups_used = a.router.n_groups_used;
        const runtime::Act ids = alloc(T * k), wts = alloc(T * k);
        BufferView bias{};
        if (a.router.selection_bias) bias = vec(*a.router.selection_bias);
        vk::route(seq_, rp, view(a.logits, T * n_expert), a.router.selection_bias ? &bias : nullptr, T, n_expert,
                  view(ids), view(wts));
        const runtime::Act g = alloc(T * k * F), u = alloc(T * k * F), y = alloc(T * k * E);
        vk::mul_mat_id(seq_, G.e, view(a.x, T * E), false, view(ids), T, k, view(g));
        vk::mul_mat_id(seq_, U.e, view(a.x, T * E), false, view(ids), T, k, view(u));
        vk::silu_mul(seq_, view(g), view(u), T * k * F, view(g));
        vk::mul_mat_id(seq_, D.e, view(g), true, view(ids), T, k, view(y));
        if (a.shared_gate) {
            const int64_t FS = a.shared_gate->ne[1];
            const runtime::Act sg = alloc(T * FS), su = alloc(T * FS);
            const runtime::Job jobs[2] = {{a.shared_gate, a.x, T, sg}, {a.shared_up, a.x, T, su}};
            matmul_glu_jobs(jobs, 2);
            matmul(*a.shared_down, sg, T, a.out);
            vk::moe_combine(seq_, view(y), view(wts), T, k, E, view(a.out, T * E), true);
        } else {
            vk::moe_combine(seq_, view(y), view(wts), T, k, E, view(a.out, T * E), false);
        }
    }

    void store_kv(kv::KVCache& cache, int il, const runtime::KVRows& rows, const runtime::Act& k,
                  const runtime::Act& v) override {
        const KVStore& s = storage(cache, il);
        const int bs = cache.block_size();
        slots_.resize((size_t)rows.n_tok);
        for (const cpu::AttnSeq& sq : *rows.seqs)
            for (int64_t t = 0; t < sq.n; ++t)
                slots_[(size_t)(sq.first + t)] = kv_slot(*sq.kv, bs, rows.pos[sq.first + t]);
        const runtime::Act slots_dev = alloc(rows.n_tok);
        const BufferView vv = v.valid() && cache.layout().v_dim ? view(v) : BufferView{};
        vk::kv_store(seq_, s.st, il, view(k), vv, rows.n_tok, slots_.data(), view(slots_dev));
    }
    void attention(const cpu::AttnParams& p, kv::KVCache& cache, int il, const std::vector<cpu::AttnSeq>& seqs,
                   const runtime::Act& q, const runtime::Act& out) override {
        const KVStore& s = storage(cache, il);
        const runtime::Act meta = alloc(attention_meta_words(seqs, cache.block_size()));
        vk::attention(seq_, p, s.st, il, seqs, view(q), view(out), view(meta));
    }

private:
    // A 1-D F32 weight (norm, bias): its copy on this device, or (placed elsewhere) its host bytes
    // uploaded into the pass arena.
    BufferView vec(const Tensor& t) {
        YITI_ASSERT(t.n_dims == 1 && t.type == DType::F32);
        const Weights* w = dynamic_cast<const Weights*>(t.prepared);
        if (w && t.device == device()) return w->vec.view();
        const runtime::Act a = alloc(t.ne[0]);
        upload(a, (const float*)t.data, t.ne[0]);
        return view(a);
    }
    void product(const runtime::Job& j) {
        YITI_ASSERT(!j.x_rows);
        const Weights& W = weights_of(*j.w, device());
        YITI_ASSERT(W.dims == 2);
        const int64_t n_out = j.w->ne[1];
        const int64_t n_in = j.w->ne[0];
        // The fast mode: activations quantized to 8 bits, integer dot products (as the CPU's fast
        // mode), for every number of columns, so that a token's result does not depend on how its
        // prompt was chunked or batched (prefix reuse). --exact: F32 activations.
        if (!exact_ && j.w->view_row0 == 0 && n_out == W.m.n_out &&
            mul_mat_q8_supported(W.m.type) && n_in % 32 == 0) {
            const uint64_t qb = quantized_bytes(n_in, j.n_tokens);
            if (!(q8_of_.n == j.n_tokens * n_in && q8_of_.buffer == j.x.buffer && q8_of_.offset == j.x.offset &&
                  q8_n_in_ == n_in)) {
                q8_ = alloc((int64_t)((qb + 3) / 4));
                quantize_q8(seq_, view(j.x, j.n_tokens * n_in), n_in, j.n_tokens, BufferView{(VkBuffer)q8_.buffer, q8_.offset, qb});
                q8_of_ = j.x;
                q8_of_.n = j.n_tokens * n_in;
                q8_n_in_ = n_in;
            }
            mul_mat_q8(seq_, W.m, BufferView{(VkBuffer)q8_.buffer, q8_.offset, qb}, j.n_tokens,
                       view(j.y, j.n_tokens * n_out));
            return;
        }
        q8_of_.n = 0;
        if (j.w->view_row0 == 0 && n_out == W.m.n_out) {
            vk::mul_mat(seq_, W.m, view(j.x, j.n_tokens * j.w->ne[0]), j.n_tokens, view(j.y, j.n_tokens * n_out));
        } else {  // rows of a matrix
            vk::mul_mat_batched(seq_, W.m, j.w->view_row0, n_out, n_out, 1, view(j.x, j.n_tokens * j.w->ne[0]),
                                j.n_tokens, view(j.y, j.n_tokens * n_out));
        }
    }
    const KVStore& storage(kv::KVCache& cache, int il) const {
        const KVStore* s = dynamic_cast<const KVStore*>(cache.device_storage(il));
        if (!s || !(s->device() == device()))
            throw Error(strprintf("kv cache: layer %d is not stored on %s", il, device().name().c_str()));
        return *s;
    }

    std::shared_ptr<SharedDevice> dev_;
    Context& ctx_;
    bool exact_;
    Sequence seq_;
    DeviceArena arena_;
    std::unique_lock<std::recursive_mutex> lock_;
    std::vector<int32_t> slots_;
    runtime::Act q8_, q8_of_;  // the quantized input of the last products, and what it was quantized from
    int64_t q8_n_in_ = 0;
};


// YITI_VK_UNSUPPORTED_TYPES=q6_k,f16: weight types to treat as having no Vulkan kernels (tests of
// the CPU fallback use it: every type the CPU runs has Vulkan kernels today).
bool type_disabled(DType t) {
    const char* env = getenv("YITI_VK_UNSUPPORTED_TYPES");
    if (!env || !*env) return false;
    const std::string list = "," + ascii_lower(env) + ",";
    return list.find("," + ascii_lower(dtype_name(t)) + ",") != std::string::npos;
}

}  // namespace

std::unique_ptr<runtime::Backend> make_backend(int index, bool exact) {
    return std::make_unique<VulkanBackend>(shared_device(index), exact);
}

bool prepare_weights(Tensor& t, std::deque<std::unique_ptr<PreparedWeights>>& keep) {
    YITI_ASSERT(t.device.kind == DeviceKind::Vulkan && t.data);
    if (type_disabled(t.type)) return false;
    if (t.n_dims >= 2 && !mul_mat_supported(t.type)) return false;
    if (t.n_dims == 1 && t.type != DType::F32) return false;
    auto dev = shared_device(t.device.index);
    std::lock_guard<std::recursive_mutex> lk(dev->mu);
    auto w = std::make_unique<Weights>();
    w->device = t.device;
    w->dev = dev;
    w->dims = t.n_dims;
    if (t.n_dims == 1) {
        const uint64_t bytes = (uint64_t)t.ne[0] * 4;
        w->vec = dev->ctx->alloc(bytes, t.name.c_str());
        dev->ctx->upload(w->vec.view(), t.data, bytes);
    } else if (t.n_dims == 2) {
        w->m = upload_matrix(*dev->ctx, t);
    } else {
        w->e = upload_experts(*dev->ctx, t);
    }
    t.prepared = w.get();
    keep.push_back(std::move(w));
    return true;
}

std::unique_ptr<kv::DeviceStorage> make_kv_storage(const Device& d, const kv::KVLayout& layout, int n_blocks,
                                                   const std::vector<int>& layers) {
    YITI_ASSERT(d.kind == DeviceKind::Vulkan);
    auto s = std::make_unique<KVStore>();
    s->dev = shared_device(d.index);
    std::lock_guard<std::recursive_mutex> lk(s->dev->mu);
    s->st = alloc_kv_storage(*s->dev->ctx, layout, n_blocks, layers);
    const uint64_t slots = (uint64_t)n_blocks * layout.block_size, esz = dtype_info(layout.type).type_size;
    s->n_bytes = layers.size() * slots * (uint64_t)(layout.k_dim + layout.v_dim) * esz;
    return s;
}

runtime::DeviceCounters device_counters() {
    std::lock_guard<std::mutex> lk(g_devices_mu);
    runtime::DeviceCounters c;
    for (auto& [index, weak] : g_devices) {
        auto d = weak.lock();
        if (!d) continue;
        const Stats& s = d->ctx->stats();
        c.submits += s.submits;
        c.syncs += s.syncs;
        c.h2d_bytes += s.h2d_bytes;
        c.d2h_bytes += s.d2h_bytes;
    }
    return c;
}

}  // namespace yiti::vk
