// Device backends: the heavy operators (matrix products, attention) run on the backend of the
// device their weights (or cache) live on. The CPU backend always exists; GPU backends add
// themselves to the registry without changes to the model code.
#pragma once
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "cpu/ops.h"

namespace yiti::runtime {

class Backend {
public:
    virtual ~Backend() = default;
    virtual Device device() const = 0;
    // y[t] = W · x[t]; x and y are host F32 buffers.
    virtual void matmul(const Tensor& w, const float* x, int64_t n_tokens, float* y) = 0;
    // Several products at once (all weights on this backend's device).
    virtual void matmul_jobs(const cpu::MatmulJob* jobs, size_t n_jobs) {
        for (size_t j = 0; j < n_jobs; ++j) matmul(*jobs[j].w, jobs[j].x, jobs[j].n_tokens, jobs[j].y);
    }
    // What the next products (jobs as for matmul_jobs, or pairs as for matmul_glu_jobs) will read:
    // a backend may start fetching it while it waits. Only a hint; x and y are not used.
    virtual void prefetch_next(const cpu::MatmulJob* jobs, size_t n_jobs, bool glu) {
        (void)jobs, (void)n_jobs, (void)glu;
    }
    // (gate, up) pairs: gate.y = silu(gate.y) * up.y afterwards (see cpu::matmul_glu_jobs).
    virtual void matmul_glu_jobs(const cpu::MatmulJob* jobs, size_t n_jobs) {
        matmul_jobs(jobs, n_jobs);
        for (size_t j = 0; j + 1 < n_jobs; j += 2)
            cpu::silu_mul(jobs[j].y, jobs[j + 1].y, jobs[j].n_tokens * jobs[j].w->ne[1]);
    }
    virtual void attention(const cpu::AttnParams& p, kv::KVCache& cache, int il,
                           const std::vector<cpu::AttnSeq>& seqs, const float* q, float* out) = 0;
};

class CpuBackend final : public Backend {
public:
    CpuBackend(ThreadPool& pool, bool exact) : pool_(pool), exact_(exact) {}
    Device device() const override { return {}; }
    void matmul(const Tensor& w, const float* x, int64_t n_tokens, float* y) override {
        cpu::matmul(pool_, w, x, n_tokens, y, exact_);
    }
    void matmul_jobs(const cpu::MatmulJob* jobs, size_t n_jobs) override {
        cpu::matmul_jobs(pool_, jobs, n_jobs, exact_);
    }
    void matmul_glu_jobs(const cpu::MatmulJob* jobs, size_t n_jobs) override {
        cpu::matmul_glu_jobs(pool_, jobs, n_jobs, exact_);
    }
    void prefetch_next(const cpu::MatmulJob* jobs, size_t n_jobs, bool glu) override {
        if (!exact_) cpu::prefetch_hint(pool_, jobs, n_jobs, glu);
    }
    void attention(const cpu::AttnParams& p, kv::KVCache& cache, int il, const std::vector<cpu::AttnSeq>& seqs,
                   const float* q, float* out) override {
        cpu::attention(pool_, p, cache, il, seqs, q, out);
    }
    ThreadPool& pool() { return pool_; }

private:
    ThreadPool& pool_;
    bool exact_;
};

// Everything one forward pass needs besides the model and the cache.
class Runtime {
public:
    struct Options {
        int n_threads = 0;   // 0: default_thread_count()
        bool exact = false;  // F32 activations, dequantized weights, F32 KV cache
    };
    explicit Runtime(const Options& opt);
    ThreadPool& pool() { return *pool_; }
    bool exact() const { return opt_.exact; }
    int n_threads() const { return pool_->size(); }
    // The backend that runs ops whose operands live on `device`.
    Backend& backend(const Device& device);

private:
    Options opt_;
    std::unique_ptr<ThreadPool> pool_;
    std::vector<std::unique_ptr<Backend>> backends_;
};

}  // namespace yiti::runtime
