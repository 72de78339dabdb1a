// DeepSeek's multi-head latent attention: the absorbed (decode) and expanded forms agree, and the
// cache holds only (kv_lora_rank + rope dims) values per token per layer.
#include <gtest/gtest.h>

#include <algorithm>

#include "../common/golden.h"
#include "engine/session.h"
#include "model/model.h"

using namespace yiti;

namespace {
const std::string k_model = std::string(YITI_SHARED_DIR) + "/models/synth-deepseek2-Q8_0.gguf";

// Prompt processing, then one-token decode steps over a fixed continuation (the golden greedy
// tokens, so both forms see the same inputs), returning the logits of every step.
std::vector<std::vector<float>> generate(model::AttnForm form, bool exact, int steps) {
    std::shared_ptr<model::Model> m = model::Model::load(k_model);
    m->set_attention_form(form);
    engine::SessionOptions so;
    so.exact = exact;
    so.n_threads = 2;
    engine::Session s(m, so);
    const auto g = test::load_golden(std::string(YITI_SHARED_DIR) + "/golden", "synth-deepseek2-Q8_0", "p2");
    std::vector<std::vector<float>> out;
    std::vector<float> logits = s.eval(g.tokens);
    out.push_back(logits);
    for (int i = 0; i < steps && i < (int)g.greedy.size(); ++i) out.push_back(s.eval({g.greedy[(size_t)i]}));
    return out;
}
}  // namespace

// In exact mode only float rounding separates the two forms (the order of the sums differs).
TEST(MLA, AbsorbedEqualsExpanded) {
    auto a = generate(model::AttnForm::Absorbed, true, 16);
    auto e = generate(model::AttnForm::Expanded, true, 16);
    ASSERT_EQ(a.size(), e.size());
    for (size_t i = 0; i < a.size(); ++i) {
        auto r = test::compare_row(a[i].data(), e[i].data(), (int64_t)a[i].size());
        EXPECT_GE(r.cosine, 0.99999) << "step " << i;
        EXPECT_LE(r.rms_ratio, 0.005) << "step " << i;
    }
}

// In the fast mode activations are quantized at different points in the two forms, which flips
// some expert choices (as any rounding does in a MoE); most steps must still agree closely.
TEST(MLA, AbsorbedMatchesExpandedFast) {
    auto a = generate(model::AttnForm::Absorbed, false, 16);
    auto e = generate(model::AttnForm::Expanded, false, 16);
    std::vector<double> cos;
    for (size_t i = 0; i < a.size(); ++i)
        cos.push_back(test::compare_row(a[i].data(), e[i].data(), (int64_t)a[i].size()).cosine);
    std::sort(cos.begin(), cos.end());
    EXPECT_GE(cos[cos.size() / 2], 0.995);
}

TEST(MLA, CacheHoldsLatentOnly) {
    std::shared_ptr<model::Model> m = model::Model::load(k_model);
    const auto& f = m->file();
    const int64_t kv_lora = *f.get_int("deepseek2.attention.kv_lora_rank");
    const int64_t rope = *f.get_int("deepseek2.rope.dimension_count");
    const int64_t n_layer = *f.get_int("deepseek2.block_count");
    const auto l = m->kv_layout(DType::F32);
    EXPECT_EQ(l.k_dim + l.v_dim, kv_lora + rope);
    // The allocated cache itself: bytes per token = layers x (kv_lora + rope) x element size.
    kv::KVCache c32(m->kv_layout(DType::F32), 64), c16(m->kv_layout(DType::F16), 64);
    EXPECT_EQ(c32.bytes_per_token(), (size_t)(n_layer * (kv_lora + rope) * 4));
    EXPECT_EQ(c16.bytes_per_token(), (size_t)(n_layer * (kv_lora + rope) * 2));
    EXPECT_EQ(c16.bytes(), c16.bytes_per_token() * (size_t)c16.capacity_tokens());
}

// `yiti info` prints the per-token cache size of the latent cache.
TEST(MLA, InfoReportsLatentCache) {
    const char* bin = getenv("YITI_BIN");
    if (!bin) GTEST_SKIP() << "YITI_BIN not set";
    std::string cmd = std::string(bin) + " info -m " + k_model;
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_TRUE(p);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ASSERT_EQ(pclose(p), 0);
    // 256 latent + 32 rope values per token per layer; 4 layers x 288 x 4 bytes (f32) = 4608 B per token.
    EXPECT_NE(out.find("288 + 0 values per token per layer"), std::string::npos) << out;
    EXPECT_NE(out.find("4.50 KiB per token (f32)"), std::string::npos) << out;
}
