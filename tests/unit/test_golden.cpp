// Every model in ../shared/models against the golden logits of an independent engine, with the
// thresholds of ../shared/README.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>

#include "../common/golden.h"
#include "cpu/packed.h"
#include "engine/session.h"
#include "model/model.h"
#include "runtime/devices.h"

namespace {

using namespace yiti;

const std::string k_shared = YITI_SHARED_DIR;

struct Case {
    std::string model;
    bool moe;
};

// The README's thresholds.
constexpr double k_dense_min_cos = 0.999, k_dense_max_rms = 0.05;
constexpr double k_exact_min_cos = 0.9999, k_exact_max_rms = 0.01;
constexpr double k_moe_fast_median_cos = 0.995;

// Where the model goes: "" (the CPU), or on the first Vulkan device (lavapipe in CI): "gpu" (-ngl 99,
// everything), "ngl2" (the last two layers and the output), "exps_cpu" (-ngl 99 -ot _exps=cpu: the
// routed experts stay on the CPU).
model::LoadOptions load_options(const std::string& placement) {
    model::LoadOptions o;
    if (placement.empty()) return o;
    o.placement.devices = {"vulkan0"};
    o.placement.n_gpu_layers = placement == "ngl2" ? 2 : 99;
    if (placement == "exps_cpu") o.placement.overrides = {{"_exps", "cpu"}};
    return o;
}

bool have_vulkan() {
    for (auto& d : runtime::list_devices())
        if (d.id == "vulkan0" && d.unusable.empty()) return true;
    return false;
}

// "q6k_cpu": -ngl 99 as "gpu", with the Vulkan backend told it has no Q6_K kernels
// (YITI_VK_UNSUPPORTED_TYPES): those tensors stay on the CPU, in the middle of GPU layers.
std::shared_ptr<model::Model> load_model(const std::string& name, const std::string& placement = "") {
    static std::map<std::string, std::shared_ptr<model::Model>> cache;
    auto& m = cache[name + "/" + placement];
    if (!m) {
        if (placement == "q6k_cpu") setenv("YITI_VK_UNSUPPORTED_TYPES", "q6_k", 1);
        m = model::Model::load(k_shared + "/models/" + name + ".gguf", load_options(placement));
        unsetenv("YITI_VK_UNSUPPORTED_TYPES");
        if (placement == "q6k_cpu") {
            EXPECT_FALSE(m->load_warnings().empty()) << "no tensor fell back to the CPU";
        }
    }
    return m;
}

struct Param {
    Case c;
    std::string prompt;
    bool exact;
    std::string placement;
};

std::string param_name(const testing::TestParamInfo<Param>& info) {
    std::string s = info.param.c.model + "_" + info.param.prompt + (info.param.exact ? "_exact" : "_fast") +
                    (info.param.placement.empty() ? "" : "_" + info.param.placement);
    for (char& ch : s)
        if (!isalnum((unsigned char)ch)) ch = '_';
    return s;
}

class Golden : public testing::TestWithParam<Param> {};

TEST_P(Golden, Logits) {
    const Param& p = GetParam();
    if (!p.placement.empty() && !have_vulkan()) GTEST_SKIP() << "no Vulkan device";
    const auto g = test::load_golden(k_shared + "/golden", p.c.model, p.prompt);
    auto m = load_model(p.c.model, p.placement);
    ASSERT_EQ(m->hparams().n_vocab, g.n_vocab);
    engine::SessionOptions so;
    so.exact = p.exact;
    so.n_threads = 2;
    so.n_batch = 32;  // several forward passes over the cache for the 81-token prompt
    engine::Session s(m, so);
    const std::vector<float> ours = s.eval(g.tokens, true);
    const int64_t V = g.n_vocab, n = (int64_t)g.tokens.size();
    std::vector<double> cos;
    for (int64_t t = 0; t < n; ++t) {
        auto r = test::compare_row(ours.data() + t * V, g.logits.data() + t * V, V);
        cos.push_back(r.cosine);
        if (p.exact) {
            EXPECT_GE(r.cosine, k_exact_min_cos) << "position " << t;
            EXPECT_LE(r.rms_ratio, k_exact_max_rms) << "position " << t;
        } else if (!p.c.moe) {
            EXPECT_GE(r.cosine, k_dense_min_cos) << "position " << t;
            EXPECT_LE(r.rms_ratio, k_dense_max_rms) << "position " << t;
        }
    }
    std::sort(cos.begin(), cos.end());
    const double median = cos.size() % 2 ? cos[cos.size() / 2] : 0.5 * (cos[cos.size() / 2 - 1] + cos[cos.size() / 2]);
    if (!p.exact && p.c.moe) {
        EXPECT_GE(median, k_moe_fast_median_cos);
    }
    RecordProperty("min_cosine", std::to_string(cos.front()));
}

std::vector<Case> all_cases() {
    const std::vector<Case> cases = {
        {"stories260K", false},          {"stories260K-f16", false},     {"stories260K-moe4x2", true},
        {"synth-llama-F16", false},      {"synth-llama-BF16", false},    {"synth-llama-Q8_0", false},
        {"synth-llama-Q4_0", false},     {"synth-llama-Q4_1", false},    {"synth-llama-Q5_0", false},
        {"synth-llama-Q5_1", false},     {"synth-llama-Q4_K_M", false},  {"synth-llama-Q5_K_M", false},
        {"synth-llama-Q6_K", false},     {"synth-llama-Q3_K_M", false},  {"synth-llama-Q2_K", false},
        {"synth-llama-IQ4_NL", false},   {"synth-llama-IQ4_XS", false},  {"synth-llama-IQ1_S", false},
        {"synth-llama-IQ1_M", false},    {"synth-llama-IQ2_XXS", false}, {"synth-llama-IQ2_XS", false},
        {"synth-llama-IQ2_S", false},    {"synth-llama-IQ3_XXS", false}, {"synth-llama-IQ3_S", false},
        {"synth-qwen2-Q8_0", false},     {"synth-qwen2-Q4_K_M", false},  {"synth-deepseek2-Q8_0", true},
        {"synth-deepseek2-Q4_K_M", true}, {"synth-deepseek2-Q2_K", true},
    };
    return cases;
}

std::vector<Param> all_params(const std::string& placement) {
    std::vector<Param> v;
    for (auto& c : all_cases()) {
        if (placement == "exps_cpu" && !c.moe) continue;
        if (placement == "q6k_cpu" && c.model != "synth-llama-Q4_K_M" && c.model != "synth-deepseek2-Q4_K_M") continue;
        for (const char* pr : {"p1", "p2"})
            for (bool exact : {false, true}) v.push_back({c, pr, exact, placement});
    }
    return v;
}

INSTANTIATE_TEST_SUITE_P(Models, Golden, testing::ValuesIn(all_params("")), param_name);
// The same on the GPU: the whole model, a split placement, and the routed experts kept on the CPU.
INSTANTIATE_TEST_SUITE_P(Gpu, Golden, testing::ValuesIn(all_params("gpu")), param_name);
INSTANTIATE_TEST_SUITE_P(GpuNgl2, Golden, testing::ValuesIn(all_params("ngl2")), param_name);
INSTANTIATE_TEST_SUITE_P(GpuExpsCpu, Golden, testing::ValuesIn(all_params("exps_cpu")), param_name);
// A type the GPU cannot take falls back to the CPU, tensor by tensor.
INSTANTIATE_TEST_SUITE_P(GpuQ6kCpu, Golden, testing::ValuesIn(all_params("q6k_cpu")), param_name);

// The real stories260K model must continue the prompt with exactly the golden greedy tokens.
class GoldenGreedy : public testing::TestWithParam<std::tuple<std::string, bool, std::string>> {};

TEST_P(GoldenGreedy, Tokens) {
    const auto& [name, exact, placement] = GetParam();
    if (!placement.empty() && !have_vulkan()) GTEST_SKIP() << "no Vulkan device";
    for (const char* pr : {"p1", "p2"}) {
        const auto g = test::load_golden(k_shared + "/golden", name, pr);
        engine::SessionOptions so;
        so.exact = exact;
        so.n_threads = 2;
        engine::Session s(load_model(name, placement), so);
        std::vector<float> logits = s.eval(g.tokens);
        std::vector<int32_t> out;
        for (size_t i = 0; i < g.greedy.size(); ++i) {
            int32_t best = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
            out.push_back(best);
            if (i + 1 < g.greedy.size()) logits = s.eval({best});
        }
        EXPECT_EQ(out, g.greedy) << name << " " << pr;
    }
}

INSTANTIATE_TEST_SUITE_P(Stories, GoldenGreedy,
                         testing::Combine(testing::Values("stories260K", "stories260K-f16", "stories260K-moe4x2"),
                                          testing::Bool(), testing::Values("")));
INSTANTIATE_TEST_SUITE_P(StoriesGpu, GoldenGreedy,
                         testing::Combine(testing::Values("stories260K", "stories260K-f16", "stories260K-moe4x2"),
                                          testing::Bool(), testing::Values("gpu")));

// Where the weights live once loaded (model.cpp): matrices with a packed layout repacked, small
// tensors and the token embeddings copied out of the file's mapping, other matrices read from it;
// all back to back in huge pages (not a 2 MB mapping per tensor). That the copies hold the file's
// bytes, the golden logits above check.
TEST(Placement, WeightsLeaveTheFileWhereTheyShould) {
    {
        auto m = load_model("synth-llama-Q4_K_M");
        const auto embd = m->placement("token_embd.weight");
        EXPECT_TRUE(embd.copied && !embd.mapped && !embd.repacked);
        const auto norm = m->placement("blk.0.attn_norm.weight");
        EXPECT_TRUE(norm.copied && !norm.mapped);
        if (cpu::packed_kernels(DType::Q4_K)) {
            EXPECT_TRUE(m->placement("blk.0.attn_q.weight").repacked);
        }
        const auto none = m->placement("no.such.tensor");
        EXPECT_FALSE(none.copied || none.mapped || none.repacked);
        for (const auto& t : m->file().tensors()) {
            const auto pl = m->placement(t.name);
            EXPECT_TRUE(pl.repacked || pl.copied || pl.mapped) << t.name << " is not used";
        }
        // Two arenas, each in whole huge pages: at most the weights (repacking pads a matrix to 16
        // rows) plus two huge pages each.
        EXPECT_GT(m->memory_bytes(), 0u);
        EXPECT_LE(m->memory_bytes(), m->stats().weight_bytes * 11 / 10 + 4 * (2u << 20));
    }
    {   // Tied embeddings: the lookups read the copy, the logits the repacked form.
        auto m = load_model("synth-qwen2-Q4_K_M");
        ASSERT_EQ(m->file().find_tensor("output.weight"), nullptr);
        const auto embd = m->placement("token_embd.weight");
        EXPECT_TRUE(embd.copied);
        EXPECT_EQ(embd.repacked, cpu::packed_kernels(m->file().find_tensor("token_embd.weight")->type) != nullptr);
    }
    {   // Without a packed layout, large matrices are read from the mapping.
        auto m = load_model("synth-llama-BF16");
        const auto* q = m->file().find_tensor("blk.0.ffn_up.weight");
        ASSERT_NE(q, nullptr);
        const auto pl = m->placement(q->name);
        if (q->size > (64u << 10)) {
            EXPECT_EQ(pl.mapped, cpu::packed_kernels(q->type) == nullptr);
        }
        EXPECT_TRUE(pl.mapped || pl.repacked || pl.copied);
    }
}

}  // namespace

namespace {

// On the GPU too, a token's logits do not depend on how its prompt was split into passes (prefix
// reuse and chunked prefill change the split): the fast mode quantizes activations the same way for
// any number of columns.
TEST(GoldenGpu, ChunkingDoesNotChangeTheLogits) {
    if (!have_vulkan()) GTEST_SKIP() << "no Vulkan device";
    for (const char* name : {"synth-llama-Q4_K_M", "synth-qwen2-Q8_0"}) {
        const auto g = test::load_golden(k_shared + "/golden", name, "p2");  // 81 tokens
        std::vector<float> last[2];
        for (int i = 0; i < 2; ++i) {
            engine::SessionOptions so;
            so.n_threads = 2;
            so.n_batch = i == 0 ? 64 : 3;
            engine::Session s(load_model(name, "gpu"), so);
            last[i] = s.eval(g.tokens);
        }
        EXPECT_EQ(last[0], last[1]) << name;
    }
}

}  // namespace
