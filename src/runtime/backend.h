// Device backends. Model code is written once for every device: each op (embedding rows, norms,
// rope, bias, add, products, SwiGLU, MoE, KV store, attention) goes through the backend of the
// device its operands live on, on activations (Act) taken from that backend's per-pass arena.
// Copies between devices are explicit (Runtime::to) and happen only where placement changes device.
//
// The CPU backend always exists; a GPU backend (src/vulkan/backend.cpp) is made the first time a
// pass asks for its device. Preparing weights for a device is the backend's job too (the CPU
// repacks, a GPU uploads: prepare_weights below); Tensor holds no backend-specific fields.
#pragma once
#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "cpu/ops.h"
#include "kv/kv_cache.h"

namespace yiti::runtime {

// Floats in one device's memory, valid until the end of the pass that took them from an arena.
struct Act {
    Device device;
    float* host = nullptr;  // the CPU: the floats themselves
    uint64_t buffer = 0;    // a GPU: the backend's buffer handle
    uint64_t offset = 0;    // a GPU: bytes into the buffer
    int64_t n = 0;          // floats
    bool valid() const { return n > 0; }
    // Floats [i, i + len) of this view (len < 0: to the end).
    Act at(int64_t i, int64_t len = -1) const;
    // The int32s of the same bytes (metadata a GPU op reads: positions, slots).
    int32_t* ints() const { return (int32_t*)host; }
};

// An Act over host floats the caller owns.
inline Act host_act(float* p, int64_t n) {
    Act a;
    a.host = p;
    a.n = n;
    return a;
}

// y[t] = W · x[t] for n_tokens rows (x rows n_in apart, y rows n_out apart). x_rows: the CPU may
// read x's rows through a row list (x_rows[t] of x_n_rows rows), used by the CPU's MoE.
struct Job {
    const Tensor* w = nullptr;
    Act x;
    int64_t n_tokens = 0;
    Act y;
    const int32_t* x_rows = nullptr;
    int64_t x_n_rows = 0;
};

// Expert selection (see model::route_experts for the arithmetic).
struct RouterParams {
    bool sigmoid = false;   // else softmax
    int k = 0;
    const Tensor* selection_bias = nullptr;  // [n_expert] F32 or null (on the experts' device)
    bool renorm = false;
    float scale = 1.0f;
    int n_groups = 0;
    int n_groups_used = 0;
};

// One routed-expert FFN: out[t] = sum over t's chosen experts of weight * down(silu(gate x) * up x)
// (+ the shared expert's FFN of x when `shared_*` are set; on the same device).
struct MoeArgs {
    Act logits;  // [n_tok][n_expert] router logits
    RouterParams router;
    const Tensor* gate_exps = nullptr;  // [n_embd, n_ff, n_expert]
    const Tensor* up_exps = nullptr;
    const Tensor* down_exps = nullptr;  // [n_ff, n_embd, n_expert]
    const Tensor* shared_gate = nullptr;
    const Tensor* shared_up = nullptr;
    const Tensor* shared_down = nullptr;
    Act x;  // [n_tok][n_embd]
    int64_t n_tok = 0;
    Act out;  // [n_tok][n_embd], overwritten
    // The weights the products after this FFN read (the CPU prefetches them), up to 4.
    const Tensor* next[4] = {nullptr, nullptr, nullptr, nullptr};
};

// What a pass's KV ops need from the batch: each sequence's rows and first position, and the
// position of every row.
struct KVRows {
    const std::vector<cpu::AttnSeq>* seqs = nullptr;
    const int32_t* pos = nullptr;  // [n_tok]
    int64_t n_tok = 0;
};

// Where a bump arena over chunks hands out memory (the memory itself is the arena's: host or
// device). A pass takes from the chunks back to back; mark()/rewind() give back what a layer took
// (the next layer reuses it); after a pass that needed more than the first chunk, reset() says to
// replace the chunks by one of the pass's peak, so steady passes allocate nothing.
class ArenaBook {
public:
    struct Mark {
        size_t chunk = 0;
        int64_t used = 0, total = 0;
    };
    // No chunk larger than max_chunk units (a device's binding range); a request over it is the
    // caller's to refuse.
    explicit ArenaBook(int64_t max_chunk = INT64_MAX) : max_chunk_(max_chunk) {}
    // Units for n; `add(cap)` must append a chunk of cap units when the current ones cannot hold it.
    template <class Add>
    std::pair<size_t, int64_t> take(int64_t n, int64_t min_chunk, Add&& add) {
        while (cur_ < caps_.size() && used_ + n > caps_[cur_]) {  // later chunks kept by a rewind
            ++cur_;
            used_ = 0;
        }
        if (cur_ == caps_.size()) {
            const int64_t cap = std::max(n, std::min(max_chunk_, std::max(caps_.empty() ? 0 : caps_.back() * 2, min_chunk)));
            add(cap);
            caps_.push_back(cap);
            used_ = 0;
        }
        const std::pair<size_t, int64_t> at{cur_, used_};
        used_ += n;
        total_ += n;
        peak_ = std::max(peak_, total_);
        return at;
    }
    Mark mark() const { return {cur_, used_, total_}; }
    void rewind(const Mark& m) {
        cur_ = m.chunk;
        used_ = m.used;
        total_ = m.total;
    }
    // Starts a pass: the size of the one chunk to replace the chunks with, or 0 to keep them.
    int64_t reset() {
        const int64_t want = caps_.size() > 1 && peak_ <= max_chunk_ ? peak_ : 0;
        if (want) caps_.assign(1, want);
        cur_ = 0;
        used_ = total_ = peak_ = 0;
        return want;
    }

private:
    int64_t max_chunk_;
    std::vector<int64_t> caps_;
    size_t cur_ = 0;
    int64_t used_ = 0, total_ = 0, peak_ = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual Device device() const = 0;

    // A pass: begin_pass resets the arena (and takes the device for this thread); end_pass waits
    // for the work recorded (a GPU: submits what is recorded and waits for it once).
    virtual void begin_pass() {}
    virtual void end_pass() {}
    // n floats from the pass arena (64-byte aligned; the contents are undefined).
    virtual Act alloc(int64_t n) = 0;
    // What the arena has handed out; rewind() gives back everything taken since (a layer's scratch).
    virtual ArenaBook::Mark arena_mark() const = 0;
    virtual void arena_rewind(const ArenaBook::Mark& m) = 0;
    // Host -> this device (src may be reused at once) and this device -> host (complete after
    // sync()). The CPU copies at once.
    virtual void upload(const Act& dst, const float* src, int64_t n) = 0;
    virtual void download(const Act& src, float* dst, int64_t n) = 0;
    virtual void sync() {}

    // out[t] = row ids[t] of w as F32, [n][w.ne[0]].
    virtual void get_rows(const Tensor& w, const int32_t* ids, int64_t n, const Act& out) = 0;
    // RMS norm of n rows of E floats (rows ld_x / ld_out floats apart; in place allowed) times w.
    virtual void rms_norm(const Act& x, int64_t ld_x, const Tensor& w, int64_t n, int64_t E, float eps, const Act& out,
                          int64_t ld_out) = 0;
    virtual void add(const Act& x, const Act& y, int64_t n) = 0;                        // x += y
    virtual void add_bias(const Act& x, const Tensor& b, int64_t rows, int64_t dim) = 0;  // each row += b
    // RoPE in place over x: [rows][heads][head_stride] (x may start inside a head: the rotated
    // dims are the first n_rot floats of each head_stride from x's start); row t at position pos[t].
    virtual void rope(const cpu::RopeParams& p, const Act& x, int64_t rows, int heads, int64_t head_stride,
                      const int32_t* pos) = 0;
    virtual void silu_mul(const Act& g, const Act& u, int64_t n) = 0;  // g = silu(g) * u
    // dst[i0*d0 + i1*d1 + e] = src[i0*s0 + i1*s1 + e] for e < len (floats; no overlap).
    virtual void copy_strided(const Act& src, const Act& dst, int64_t n0, int64_t n1, int64_t len, int64_t s0,
                              int64_t s1, int64_t d0, int64_t d1) = 0;

    virtual void matmul_jobs(const Job* jobs, size_t n_jobs) = 0;
    // (gate, up) pairs: gate.y = silu(gate.y) * up.y afterwards.
    virtual void matmul_glu_jobs(const Job* jobs, size_t n_jobs) = 0;
    void matmul(const Tensor& w, const Act& x, int64_t n_tokens, const Act& y) {
        const Job j{&w, x, n_tokens, y};
        matmul_jobs(&j, 1);
    }
    // Per-matrix products: for m < n_mats, c < n_cols: y[m][c][r] = W[row0 + m*stride + r] · x[m][c]
    // for r < rows (x: [n_mats][n_cols][w.ne[0]], y: [n_mats][n_cols][rows]). w is 2-D, or 3-D
    // read as its ne[1]*ne[2] rows.
    virtual void mul_mat_batched(const Tensor& w, int64_t row0, int64_t rows, int64_t stride, int64_t n_mats,
                                 const Act& x, int64_t n_cols, const Act& y) = 0;
    // A hint: the weights the next products read (decode streams them). Only the CPU uses it.
    virtual void prefetch_next(const Tensor* const* w, size_t n, int64_t n_tokens, bool glu) {
        (void)w, (void)n, (void)n_tokens, (void)glu;
    }

    virtual void moe(const MoeArgs& a) = 0;

    // Writes rows of K ([n_tok][k_dim]) and V ([n_tok][v_dim]; invalid when V is read from K) of
    // layer il into the cache at each row's position.
    virtual void store_kv(kv::KVCache& cache, int il, const KVRows& rows, const Act& k, const Act& v) = 0;
    // cpu::attention's semantics over layer il's storage.
    virtual void attention(const cpu::AttnParams& p, kv::KVCache& cache, int il, const std::vector<cpu::AttnSeq>& seqs,
                           const Act& q, const Act& out) = 0;
};

// Per-pass scratch on the host (64-byte aligned chunks).
class HostArena {
public:
    float* alloc(int64_t n);
    void reset();
    ArenaBook::Mark mark() const { return book_.mark(); }
    void rewind(const ArenaBook::Mark& m) { book_.rewind(m); }

private:
    struct Free {
        void operator()(float* p) const;
    };
    using Chunk = std::unique_ptr<float, Free>;
    static Chunk make_chunk(int64_t cap);
    std::vector<Chunk> chunks_;
    ArenaBook book_;
};

class CpuBackend final : public Backend {
public:
    CpuBackend(ThreadPool& pool, bool exact) : pool_(pool), exact_(exact) {}
    Device device() const override { return {}; }
    void begin_pass() override { arena_.reset(); }
    Act alloc(int64_t n) override;
    ArenaBook::Mark arena_mark() const override { return arena_.mark(); }
    void arena_rewind(const ArenaBook::Mark& m) override { arena_.rewind(m); }
    void upload(const Act& dst, const float* src, int64_t n) override;
    void download(const Act& src, float* dst, int64_t n) override;

    void get_rows(const Tensor& w, const int32_t* ids, int64_t n, const Act& out) override;
    void rms_norm(const Act& x, int64_t ld_x, const Tensor& w, int64_t n, int64_t E, float eps, const Act& out,
                  int64_t ld_out) override;
    void add(const Act& x, const Act& y, int64_t n) override;
    void add_bias(const Act& x, const Tensor& b, int64_t rows, int64_t dim) override;
    void rope(const cpu::RopeParams& p, const Act& x, int64_t rows, int heads, int64_t head_stride,
              const int32_t* pos) override;
    void silu_mul(const Act& g, const Act& u, int64_t n) override;
    void copy_strided(const Act& src, const Act& dst, int64_t n0, int64_t n1, int64_t len, int64_t s0, int64_t s1,
                      int64_t d0, int64_t d1) override;
    void matmul_jobs(const Job* jobs, size_t n_jobs) override;
    void matmul_glu_jobs(const Job* jobs, size_t n_jobs) override;
    void mul_mat_batched(const Tensor& w, int64_t row0, int64_t rows, int64_t stride, int64_t n_mats, const Act& x,
                         int64_t n_cols, const Act& y) override;
    void prefetch_next(const Tensor* const* w, size_t n, int64_t n_tokens, bool glu) override;
    void moe(const MoeArgs& a) override;
    void store_kv(kv::KVCache& cache, int il, const KVRows& rows, const Act& k, const Act& v) override;
    void attention(const cpu::AttnParams& p, kv::KVCache& cache, int il, const std::vector<cpu::AttnSeq>& seqs,
                   const Act& q, const Act& out) override;

    ThreadPool& pool() { return pool_; }

private:
    const cpu::MatmulJob* to_cpu(const Job* jobs, size_t n);
    ThreadPool& pool_;
    bool exact_;
    HostArena arena_;
    std::vector<cpu::MatmulJob> cpu_jobs_;   // reused: no allocation per pass
    std::vector<Tensor> views_;              // mul_mat_batched's per-matrix views (reused)
    std::vector<Job> moe_jobs_;
};

// Everything one forward pass needs besides the model and the cache.
class Runtime {
public:
    struct Options {
        int n_threads = 0;   // 0: default_thread_count()
        bool exact = false;  // F32 activations, dequantized weights, F32 KV cache
    };
    explicit Runtime(const Options& opt);
    ~Runtime();
    ThreadPool& pool() { return *pool_; }
    bool exact() const { return opt_.exact; }
    int n_threads() const { return pool_->size(); }
    // The backend that runs ops whose operands live on `device` (made on first use).
    Backend& backend(const Device& device);
    Backend& cpu() { return *backends_[0]; }

    // A forward pass: every backend's arena is reset at the start; at the end every device's
    // recorded work is waited for (a pass entirely on one GPU syncs with the host once).
    void begin_pass();
    void end_pass();
    // x on `device`: x itself when it is there, else a copy in that device's arena.
    Act to(const Device& device, const Act& x);

    // Scratch taken while a Scope lives goes back to the arenas when it ends (the backends in the
    // pass when it began); what must outlive it (the residual stream) is taken before.
    class Scope {
    public:
        explicit Scope(Runtime& rt);
        ~Scope();
        Scope(const Scope&) = delete;
        Scope& operator=(const Scope&) = delete;

    private:
        Runtime& rt_;
        std::vector<std::pair<Backend*, ArenaBook::Mark>> marks_;
    };

private:
    Options opt_;
    std::unique_ptr<ThreadPool> pool_;
    std::vector<std::unique_ptr<Backend>> backends_;
    std::vector<Backend*> in_pass_;  // the backends a pass used (begin_pass was called on)
    bool pass_open_ = false;
};

// Prepares a weight for its device (t.device) at load: the GPU's backend uploads it (and sets
// t.prepared; t.data keeps pointing at the host bytes). The CPU's repacking stays in the model's
// loader (model.cpp), which owns the memory. Returns false, leaving t as it was, when the device
// cannot hold this tensor's type (the caller keeps it on the CPU with a warning).
// `keep`: the model's list of prepared weights (the result is appended; the model owns it).
bool prepare_weights(Tensor& t, std::deque<std::unique_ptr<PreparedWeights>>& keep);

// What the GPUs were asked to do since they were opened, summed over the open devices (callers take
// differences): queue submissions, host waits, bytes copied host to device and back.
struct DeviceCounters {
    uint64_t submits = 0, syncs = 0, h2d_bytes = 0, d2h_bytes = 0;
};
DeviceCounters device_counters();

// The factory of KV storage on GPUs (kv::KVCache's StorageFactory).
kv::StorageFactory device_kv_storage();

}  // namespace yiti::runtime
