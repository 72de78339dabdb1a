// One model, one runtime, one KV cache and one sequence: the single-user path behind
// `yiti run`, `yiti logits` and `yiti chat`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/backend.h"

namespace yiti::engine {

struct SessionOptions {
    int n_threads = 0;       // 0: all cores available
    bool exact = false;      // F32 activations, dequantized weights, F32 KV cache
    int64_t n_ctx = 0;       // 0: min(model's training context, 4096)
    int64_t n_batch = 512;   // tokens per forward pass when processing a prompt
    bool kv_f32 = false;     // F32 KV cache in the fast mode too (exact mode always uses F32)
};

class Session {
public:
    Session(std::shared_ptr<model::Model> model, const SessionOptions& opt);
    ~Session();

    model::Model& model() { return *model_; }
    runtime::Runtime& runtime() { return *rt_; }
    kv::KVCache& cache() { return *cache_; }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t n_past() const { return seq_.n_tokens; }
    int64_t n_vocab() const { return model_->hparams().n_vocab; }

    // Appends tokens to the sequence. Returns logits of the last token ([n_vocab]), or of every
    // token ([n_tokens][n_vocab]) when all_logits. Throws Error when the context would overflow.
    std::vector<float> eval(const std::vector<int32_t>& tokens, bool all_logits = false);
    // Forgets positions >= n (n = 0 resets the sequence).
    void truncate(int64_t n);

private:
    std::shared_ptr<model::Model> model_;
    std::unique_ptr<runtime::Runtime> rt_;
    std::unique_ptr<kv::KVCache> cache_;
    kv::SeqKV seq_;
    int64_t n_ctx_ = 0;
    int64_t n_batch_ = 512;
};

}  // namespace yiti::engine
