#include "engine/session.h"

#include <algorithm>

#include "core/error.h"

namespace yiti::engine {

Session::Session(std::shared_ptr<model::Model> model, const SessionOptions& opt) : model_(std::move(model)) {
    runtime::Runtime::Options ro;
    ro.n_threads = opt.n_threads;
    ro.exact = opt.exact;
    rt_ = std::make_unique<runtime::Runtime>(ro);
    const auto& hp = model_->hparams();
    n_ctx_ = opt.n_ctx > 0 ? opt.n_ctx : std::min<int64_t>(hp.n_ctx_train, 4096);
    n_batch_ = std::max<int64_t>(1, opt.n_batch);
    cache_ = model_->make_cache(model_->kv_layout(opt.exact || opt.kv_f32 ? DType::F32 : model_->preferred_kv_type()), n_ctx_);
}

Session::~Session() { cache_->release(seq_); }

std::vector<float> Session::eval(const std::vector<int32_t>& tokens, bool all_logits) {
    const int64_t n = (int64_t)tokens.size();
    const int64_t V = n_vocab();
    if (n == 0) throw Error("eval: no tokens");
    if (seq_.n_tokens + n > n_ctx_)
        throw Error(strprintf("context is full: %lld tokens + %lld new exceed the context size %lld",
                              (long long)seq_.n_tokens, (long long)n, (long long)n_ctx_));
    for (int32_t t : tokens)
        if (t < 0 || t >= V) throw Error(strprintf("token id %d is out of range [0, %lld)", t, (long long)V));
    if (!cache_->reserve(seq_, seq_.n_tokens + n)) throw Error("kv cache: out of blocks");
    std::vector<float> out((size_t)((all_logits ? n : 1) * V));
    for (int64_t b = 0; b < n; b += n_batch_) {
        const int64_t m = std::min(n_batch_, n - b);
        model::Batch batch;
        batch.tokens.assign(tokens.begin() + b, tokens.begin() + b + m);
        model::BatchSeq s;
        s.kv = &seq_;
        s.first = 0;
        s.n = m;
        s.all_logits = all_logits;
        s.no_logits = !all_logits && b + m < n;
        batch.seqs.push_back(s);
        float* dst = all_logits ? out.data() + b * V : out.data();
        model_->forward(*rt_, *cache_, batch, dst);
        batch.advance();
    }
    return out;
}

void Session::truncate(int64_t n) { cache_->truncate(seq_, std::max<int64_t>(0, n)); }

}  // namespace yiti::engine
