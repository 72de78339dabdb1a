#include "runtime/backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "cpu/route.h"
#if YITI_VULKAN
#include "vulkan/backend.h"
#endif

namespace yiti::runtime {

Act Act::at(int64_t i, int64_t len) const {
    if (len < 0) len = n - i;
    YITI_ASSERT(i >= 0 && i + len <= n);
    Act a = *this;
    if (host) a.host = host + i;
    a.offset = offset + (uint64_t)i * 4;
    a.n = len;
    return a;
}

// ---------------------------------------------------------------------------------------------
// Host arena

void HostArena::Free::operator()(float* p) const { std::free(p); }

HostArena::Chunk HostArena::make_chunk(int64_t cap) {
    const size_t bytes = ((size_t)cap * sizeof(float) + 63) / 64 * 64;
    Chunk c((float*)std::aligned_alloc(64, bytes));
    if (!c) throw std::bad_alloc();
    return c;
}

float* HostArena::alloc(int64_t n) {
    n = (n + 15) / 16 * 16;  // 64-byte steps
    const auto [chunk, off] = book_.take(n, 1 << 16, [&](int64_t cap) { chunks_.push_back(make_chunk(cap)); });
    return chunks_[chunk].get() + off;
}

void HostArena::reset() {
    if (const int64_t want = book_.reset()) {  // one chunk that holds a whole pass like the last one
        chunks_.clear();
        chunks_.push_back(make_chunk(want));
    }
}

// ---------------------------------------------------------------------------------------------
// CPU backend

Act CpuBackend::alloc(int64_t n) {
    Act a;
    a.host = arena_.alloc(n);
    a.n = n;
    return a;
}

void CpuBackend::upload(const Act& dst, const float* src, int64_t n) {
    YITI_ASSERT(dst.n >= n);
    memcpy(dst.host, src, (size_t)n * 4);
}

void CpuBackend::download(const Act& src, float* dst, int64_t n) {
    YITI_ASSERT(src.n >= n);
    memcpy(dst, src.host, (size_t)n * 4);
}

void CpuBackend::get_rows(const Tensor& w, const int32_t* ids, int64_t n, const Act& out) {
    cpu::get_rows(w, ids, n, out.host);
}

void CpuBackend::rms_norm(const Act& x, int64_t ld_x, const Tensor& w, int64_t n, int64_t E, float eps, const Act& out,
                          int64_t ld_out) {
    const float* xp = x.host;
    const float* wp = (const float*)w.data;
    float* op = out.host;
    auto rows = [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) cpu::rms_norm(xp + t * ld_x, wp, E, eps, op + t * ld_out);
    };
    if (n * E < 16384) rows(0, n);
    else pool_.parallel_for(n, std::max<int64_t>(1, 4096 / E), rows);
}

void CpuBackend::add(const Act& x, const Act& y, int64_t n) {
    float* xp = x.host;
    const float* yp = y.host;
    auto add = [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) xp[i] += yp[i];
    };
    if (n < 65536) add(0, n);
    else pool_.parallel_for(n, 16384, add);
}

void CpuBackend::add_bias(const Act& x, const Tensor& b, int64_t rows, int64_t dim) {
    cpu::add_bias(x.host, (const float*)b.data, rows, dim);
}

void CpuBackend::rope(const cpu::RopeParams& p, const Act& x, int64_t rows, int heads, int64_t head_stride,
                      const int32_t* pos) {
    cpu::rope(p, x.host, rows, heads, head_stride, pos);
}

void CpuBackend::silu_mul(const Act& g, const Act& u, int64_t n) { cpu::silu_mul(g.host, u.host, n); }

void CpuBackend::copy_strided(const Act& src, const Act& dst, int64_t n0, int64_t n1, int64_t len, int64_t s0,
                              int64_t s1, int64_t d0, int64_t d1) {
    for (int64_t i0 = 0; i0 < n0; ++i0)
        for (int64_t i1 = 0; i1 < n1; ++i1)
            memcpy(dst.host + i0 * d0 + i1 * d1, src.host + i0 * s0 + i1 * s1, (size_t)len * 4);
}

const cpu::MatmulJob* CpuBackend::to_cpu(const Job* jobs, size_t n) {
    cpu_jobs_.resize(n);
    for (size_t j = 0; j < n; ++j)
        cpu_jobs_[j] = cpu::MatmulJob{jobs[j].w, jobs[j].x.host, jobs[j].n_tokens, jobs[j].y.host, jobs[j].x_rows,
                                      jobs[j].x_n_rows};
    return cpu_jobs_.data();
}

void CpuBackend::matmul_jobs(const Job* jobs, size_t n_jobs) {
    if (n_jobs == 1 && !jobs[0].x_rows) {
        cpu::matmul(pool_, *jobs[0].w, jobs[0].x.host, jobs[0].n_tokens, jobs[0].y.host, exact_);
        return;
    }
    cpu::matmul_jobs(pool_, to_cpu(jobs, n_jobs), n_jobs, exact_);
}

void CpuBackend::matmul_glu_jobs(const Job* jobs, size_t n_jobs) {
    cpu::matmul_glu_jobs(pool_, to_cpu(jobs, n_jobs), n_jobs, exact_);
}

void CpuBackend::mul_mat_batched(const Tensor& w, int64_t row0, int64_t rows, int64_t stride, int64_t n_mats,
                                 const Act& x, int64_t n_cols, const Act& y) {
    // One job list over views of each matrix's rows (a 3-D tensor whose matrices are `rows` tall
    // and `stride` apart is read as its slices: they keep the prepared form).
    const int64_t n_in = w.ne[0];
    views_.resize((size_t)n_mats);
    std::vector<Job>& jobs = moe_jobs_;
    jobs.resize((size_t)n_mats);
    for (int64_t m = 0; m < n_mats; ++m) {
        Tensor& v = views_[(size_t)m];
        if (w.n_dims == 3 && row0 == 0 && rows == w.ne[1] && stride == w.ne[1]) v = w.slice2(m);
        else v = w.rows(row0 + m * stride, rows);
        jobs[(size_t)m] = Job{&v, x.at(m * n_cols * n_in, n_cols * n_in), n_cols, y.at(m * n_cols * rows, n_cols * rows)};
    }
    cpu::matmul_jobs(pool_, to_cpu(jobs.data(), jobs.size()), jobs.size(), exact_);
}

void CpuBackend::prefetch_next(const Tensor* const* w, size_t n, int64_t n_tokens, bool glu) {
    if (exact_) return;
    cpu::MatmulJob jobs[4];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 4; ++i)
        if (w[i] && w[i]->valid() && w[i]->device.kind == DeviceKind::CPU) jobs[k++] = cpu::MatmulJob{w[i], nullptr, n_tokens, nullptr};
    if (k > 0) cpu::prefetch_hint(pool_, jobs, k, glu);
}

void CpuBackend::moe(const MoeArgs& a) {
    const Tensor& gate_exps = *a.gate_exps;
    const int n_expert = (int)gate_exps.ne[2];
    const int64_t n_ff = gate_exps.ne[1], n_tok = a.n_tok, n_embd = a.x.n / std::max<int64_t>(n_tok, 1);
    cpu::RouteParams rp;
    rp.sigmoid = a.router.sigmoid;
    rp.k = a.router.k;
    rp.selection_bias = a.router.selection_bias ? (const float*)a.router.selection_bias->data : nullptr;
    rp.renorm = a.router.renorm;
    rp.scale = a.router.scale;
    rp.n_groups = a.router.n_groups;
    rp.n_groups_used = a.router.n_groups_used;
    const cpu::ExpertChoice choice = cpu::route_experts(a.logits.host, n_tok, n_expert, rp);
    // Group (token, weight) pairs by expert: each expert's weights are read once per pass.
    std::vector<std::vector<std::pair<int64_t, float>>> by_expert((size_t)n_expert);
    for (int64_t t = 0; t < n_tok; ++t)
        for (int j = 0; j < choice.k; ++j) {
            const int e = choice.ids[(size_t)(t * choice.k + j)];
            YITI_ASSERT(e >= 0 && e < n_expert);
            by_expert[(size_t)e].emplace_back(t, choice.weights[(size_t)(t * choice.k + j)]);
        }
    struct Active {
        int e;
        int64_t m;
        Tensor gate, up, down;
        std::vector<int32_t> rows;  // empty: all tokens in order
        size_t off_ff, off_out;     // into the g/u and y buffers
    };
    std::vector<Active> act;
    size_t ff_total = 0, out_total = 0;
    for (int e = 0; e < n_expert; ++e) {
        const auto& rows = by_expert[(size_t)e];
        if (rows.empty()) continue;
        Active x{e, (int64_t)rows.size(), gate_exps.slice2(e), a.up_exps->slice2(e), a.down_exps->slice2(e), {}, ff_total,
                 out_total};
        bool identity = x.m == n_tok;
        for (int64_t r = 0; identity && r < x.m; ++r) identity = rows[(size_t)r].first == r;
        if (!identity)
            for (auto& rw : rows) x.rows.push_back((int32_t)rw.first);
        ff_total += (size_t)(x.m * n_ff);
        out_total += (size_t)(x.m * n_embd);
        act.push_back(std::move(x));
    }
    const bool shared = a.shared_gate != nullptr;
    const int64_t n_ff_sh = shared ? a.shared_gate->ne[1] : 0;
    const size_t g_n = ff_total + (size_t)(n_tok * n_ff_sh);
    float* g = arena_.alloc((int64_t)g_n);
    float* u = arena_.alloc((int64_t)g_n);
    float* y = arena_.alloc((int64_t)(out_total + (size_t)(shared ? n_tok * n_embd : 0)));
    float* g_sh = g + ff_total;
    float* u_sh = u + ff_total;
    float* y_sh = y + out_total;
    const float* x = a.x.host;
    // Every expert's gate and up (and the shared expert's) in one job list over the one input.
    std::vector<cpu::MatmulJob> jobs;
    for (const Active& e : act) {
        cpu::MatmulJob jg{&e.gate, x, e.m, g + e.off_ff};
        cpu::MatmulJob ju{&e.up, x, e.m, u + e.off_ff};
        if (!e.rows.empty()) {
            jg.x_rows = ju.x_rows = e.rows.data();
            jg.x_n_rows = ju.x_n_rows = n_tok;
        }
        jobs.push_back(jg);
        jobs.push_back(ju);
    }
    if (shared) {
        jobs.push_back({a.shared_gate, x, n_tok, g_sh});
        jobs.push_back({a.shared_up, x, n_tok, u_sh});
    }
    {
        const Tensor* down_next[4] = {};  // the down projections (the first experts' ones)
        for (size_t i = 0; i < act.size() && i < 4; ++i) down_next[i] = &act[i].down;
        prefetch_next(down_next, 4, n_tok, false);
    }
    cpu::matmul_glu_jobs(pool_, jobs.data(), jobs.size(), exact_);  // g = silu(g) * u, pair by pair
    prefetch_next(a.next, 4, n_tok, false);
    jobs.clear();
    for (const Active& e : act) jobs.push_back({&e.down, g + e.off_ff, e.m, y + e.off_out});
    if (shared) jobs.push_back({a.shared_down, g_sh, n_tok, y_sh});
    cpu::matmul_jobs(pool_, jobs.data(), jobs.size(), exact_);
    float* out = a.out.host;
    std::fill(out, out + n_tok * n_embd, 0.0f);
    for (const Active& e : act) {
        const auto& rows = by_expert[(size_t)e.e];
        for (int64_t r = 0; r < e.m; ++r)
            cpu::axpy_f32(rows[(size_t)r].second, y + e.off_out + r * n_embd, out + rows[(size_t)r].first * n_embd,
                          n_embd);
    }
    if (shared)
        for (int64_t i = 0; i < n_tok * n_embd; ++i) out[i] += y_sh[i];
}

void CpuBackend::store_kv(kv::KVCache& cache, int il, const KVRows& rows, const Act& k, const Act& v) {
    const auto& L = cache.layout();
    for (const cpu::AttnSeq& s : *rows.seqs) {
        for (int64_t t = 0; t < s.n; ++t) {
            const int64_t row = s.first + t;
            const int32_t pos = rows.pos[row];
            cpu::store_kv_row(L.type, k.host + row * L.k_dim, cache.k_row(il, *s.kv, pos), L.k_dim);
            if (v.valid() && L.v_dim)
                cpu::store_kv_row(L.type, v.host + row * L.v_dim, cache.v_row(il, *s.kv, pos), L.v_dim);
        }
    }
}

void CpuBackend::attention(const cpu::AttnParams& p, kv::KVCache& cache, int il, const std::vector<cpu::AttnSeq>& seqs,
                           const Act& q, const Act& out) {
    cpu::attention(pool_, p, cache, il, seqs, q.host, out.host);
}

// ---------------------------------------------------------------------------------------------
// Runtime

Runtime::Runtime(const Options& opt) : opt_(opt) {
    int n = opt.n_threads > 0 ? opt.n_threads : default_thread_count();
    pool_ = std::make_unique<ThreadPool>(n);
    backends_.push_back(std::make_unique<CpuBackend>(*pool_, opt.exact));
}

Runtime::~Runtime() {
    if (pass_open_) {
        try {
            end_pass();
        } catch (...) {
        }
    }
}

Backend& Runtime::backend(const Device& device) {
    for (auto& b : backends_)
        if (b->device() == device) {
            if (pass_open_ && std::find(in_pass_.begin(), in_pass_.end(), b.get()) == in_pass_.end()) {
                b->begin_pass();
                in_pass_.push_back(b.get());
            }
            return *b;
        }
#if YITI_VULKAN
    if (device.kind == DeviceKind::Vulkan) {
        backends_.push_back(vk::make_backend(device.index, opt_.exact));
        Backend& b = *backends_.back();
        if (pass_open_) {
            b.begin_pass();
            in_pass_.push_back(&b);
        }
        return b;
    }
#endif
    throw Error("no backend for device " + device.name());
}

void Runtime::begin_pass() {
    YITI_ASSERT(!pass_open_);
    pass_open_ = true;
    in_pass_.clear();
    backends_[0]->begin_pass();
    in_pass_.push_back(backends_[0].get());
}

void Runtime::end_pass() {
    YITI_ASSERT(pass_open_);
    pass_open_ = false;
    // Every backend ends its pass even when one fails (each holds its device until then).
    std::exception_ptr err;
    for (Backend* b : in_pass_) {
        try {
            b->end_pass();
        } catch (...) {
            if (!err) err = std::current_exception();
        }
    }
    in_pass_.clear();
    if (err) std::rethrow_exception(err);
}

Runtime::Scope::Scope(Runtime& rt) : rt_(rt) {
    for (Backend* b : rt_.in_pass_) marks_.emplace_back(b, b->arena_mark());
}

Runtime::Scope::~Scope() {
    for (auto& [b, m] : marks_) b->arena_rewind(m);
}

Act Runtime::to(const Device& device, const Act& x) {
    if (x.device == device || !x.valid()) return x;
    Backend& dst = backend(device);
    Backend& src = backend(x.device);
    Act y = dst.alloc(x.n);
    if (x.device.kind == DeviceKind::CPU) {
        dst.upload(y, x.host, x.n);
    } else if (device.kind == DeviceKind::CPU) {
        src.download(x, y.host, x.n);
        src.sync();
    } else {  // GPU to GPU through the host
        Act h = cpu().alloc(x.n);
        src.download(x, h.host, x.n);
        src.sync();
        dst.upload(y, h.host, x.n);
    }
    return y;
}

bool prepare_weights(Tensor& t, std::deque<std::unique_ptr<PreparedWeights>>& keep) {
#if YITI_VULKAN
    if (t.device.kind == DeviceKind::Vulkan) return vk::prepare_weights(t, keep);
#endif
    (void)keep;
    return t.device.kind == DeviceKind::CPU;
}

DeviceCounters device_counters() {
#if YITI_VULKAN
    return vk::device_counters();
#else
    return {};
#endif
}

kv::StorageFactory device_kv_storage() {
#if YITI_VULKAN
    return [](const Device& d, const kv::KVLayout& layout, int n_blocks, const std::vector<int>& layers) {
        return vk::make_kv_storage(d, layout, n_blocks, layers);
    };
#else
    return {};
#endif
}

}  // namespace yiti::runtime
