// Grammar-constrained decoding: the sampler never picks a masked-out token (greedy or sampled,
// with penalties), the per-sequence constraint's phases (reasoning first, whitespace after the
// closing tag, the grammar, completion), and the engine generating valid JSON from stories260K.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <random>

#include <nlohmann/json.hpp>

#include "engine/constraint.h"
#include "engine/engine.h"
#include "sample/grammar.h"
#include "sample/json_schema.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

using namespace yiti;
using namespace yiti::sample;
using ojson = nlohmann::ordered_json;

namespace {

TokenMask random_mask(std::mt19937& rng, int32_t n, double p) {
    TokenMask m;
    m.reset(n);
    std::bernoulli_distribution b(p);
    for (int32_t i = 0; i < n; ++i)
        if (b(rng)) m.set(i);
    return m;
}

}  // namespace

TEST(Constraint, SamplerNeverPicksMaskedTokens) {
    std::mt19937 rng(1);
    const int32_t V = 1000;
    std::normal_distribution<float> N(0, 3);
    for (int trial = 0; trial < 200; ++trial) {
        SamplerParams p;
        p.seed = (uint64_t)trial;
        p.temperature = trial % 4 == 0 ? 0.0f : 1.5f;
        p.top_k = trial % 3 == 0 ? 0 : 5;
        p.top_p = trial % 2 ? 1.0f : 0.5f;
        p.min_p = trial % 5 == 0 ? 0.0f : 0.1f;
        p.repeat_penalty = trial % 2 ? 1.3f : 1.0f;
        p.presence_penalty = trial % 3 == 1 ? 1.0f : 0.0f;
        Sampler s(p, V);
        std::vector<float> logits(V);
        for (auto& l : logits) l = N(rng);
        // The masked-out tokens are the likeliest ones: a leak would show at once.
        TokenMask m = random_mask(rng, V, trial % 7 == 0 ? 0.002 : 0.05);
        if (m.count() == 0) m.set(V - 1);
        for (int32_t i = 0; i < V; ++i)
            if (!m.test(i)) logits[(size_t)i] += 20;
        std::vector<int32_t> hist = {1, 2, 3};
        for (int step = 0; step < 20; ++step) {
            const int32_t t = s.sample(logits.data(), hist, &m);
            ASSERT_TRUE(m.test(t)) << "trial " << trial << " step " << step;
            EXPECT_LE(s.last_logprob(), 1e-5f);
            for (auto& tp : s.last_top(10)) EXPECT_TRUE(m.test(tp.id));
            hist.push_back(t);
        }
    }
}

TEST(Constraint, SamplerMaskShorterThanVocabulary) {
    // Model vocabularies may be padded past the tokenizer's: ids past the mask are masked out.
    SamplerParams p;
    p.temperature = 0;
    Sampler s(p, 200);
    std::vector<float> logits(200, 0.0f);
    logits[150] = 100;
    logits[10] = 1;
    TokenMask m;
    m.reset(100);
    m.set(10);
    m.set(20);
    EXPECT_EQ(s.sample(logits.data(), {}, &m), 10);
    EXPECT_NEAR(s.last_logprob(), std::log(std::exp(1.0) / (std::exp(1.0) + 1.0)), 1e-5);
    // Without a mask: unchanged behaviour.
    EXPECT_EQ(s.sample(logits.data(), {}), 150);
}

namespace {

// Pieces: the ASCII characters (id = code; id 0 is the end of generation), then a few tags.
struct TagVocab {
    std::shared_ptr<const TokenVocab> v;
    int32_t open, close, close_nl, close_brace;
    TagVocab() {
        std::vector<std::string> p;
        for (int c = 0; c < 128; ++c) p.push_back(c == 0 ? std::string() : std::string(1, char(c)));
        open = (int32_t)p.size();
        p.push_back("<think>");
        close = (int32_t)p.size();
        p.push_back("</think>");
        close_nl = (int32_t)p.size();
        p.push_back("</think>\n\n");
        close_brace = (int32_t)p.size();
        p.push_back("</think>{");
        p.push_back("\n\n");
        v = std::make_shared<TokenVocab>(p, std::vector<int32_t>{0});
    }
};

std::shared_ptr<const engine::ConstraintSpec> spec_for(const TagVocab& tv, engine::ConstraintSpec::Start start,
                                                       const char* schema = R"({"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]})") {
    auto spec = std::make_shared<engine::ConstraintSpec>();
    spec->cache = std::make_shared<MaskCache>(json_schema_grammar(ojson::parse(schema)), tv.v);
    spec->cv = engine::ConstraintVocab::build(tv.v);
    spec->start = start;
    return spec;
}

void feed(engine::Constraint& c, const std::string& text) {
    for (char ch : text) {
        ASSERT_TRUE(c.mask().test((int32_t)(unsigned char)ch)) << "'" << ch << "' in " << text;
        c.accept((int32_t)(unsigned char)ch);
    }
}

}  // namespace

TEST(Constraint, GrammarFromTheStart) {
    TagVocab tv;
    engine::Constraint c(spec_for(tv, engine::ConstraintSpec::Start::Now));
    EXPECT_FALSE(c.mask().test(0));  // no end of generation before the document
    EXPECT_FALSE(c.mask().test('<'));
    EXPECT_FALSE(c.mask().test(tv.open));
    feed(c, "{\"a\": 1");
    EXPECT_FALSE(c.complete());
    EXPECT_FALSE(c.mask().test(0));
    feed(c, "2}");
    EXPECT_TRUE(c.complete());
    EXPECT_TRUE(c.mask().test(0));
}

TEST(Constraint, TopLevelNumberIsNotCompleteWhileDigitsMayFollow) {
    TagVocab tv;
    engine::Constraint c(spec_for(tv, engine::ConstraintSpec::Start::Now, R"({"type":"integer","maximum":500})"));
    feed(c, "4");
    EXPECT_FALSE(c.complete());
    EXPECT_TRUE(c.mask().test(0));  // may end here
    feed(c, "9");
    EXPECT_FALSE(c.complete());
    feed(c, "9");
    EXPECT_TRUE(c.complete());  // 4990 would be too large
}

TEST(Constraint, ReasoningFirst) {
    TagVocab tv;
    engine::Constraint c(spec_for(tv, engine::ConstraintSpec::Start::AfterReasoning));
    // Free text (not JSON) while reasoning, but no end of generation, and no token that closes
    // the block and continues with text.
    EXPECT_FALSE(c.mask().test(0));
    EXPECT_FALSE(c.mask().test(tv.close_brace));
    EXPECT_TRUE(c.mask().test(tv.close));
    EXPECT_TRUE(c.mask().test(tv.close_nl));
    feed(c, "Let me think. <b>x</b> </thin");
    EXPECT_FALSE(c.complete());
    c.accept('k');
    c.accept('>');  // the tag, split over tokens, closes the block
    // Whitespace may follow the tag, then the document.
    EXPECT_TRUE(c.mask().test(tv.close_nl + 2));  // "\n\n"
    c.accept(tv.close_nl + 2);
    EXPECT_FALSE(c.mask().test('x'));
    EXPECT_FALSE(c.mask().test(0));
    feed(c, "{\"a\":7}");
    EXPECT_TRUE(c.complete());
}

TEST(Constraint, ClosingTokenWithWhitespace) {
    TagVocab tv;
    engine::Constraint c(spec_for(tv, engine::ConstraintSpec::Start::AfterReasoning));
    feed(c, "hmm");
    c.accept(tv.close_nl);
    EXPECT_FALSE(c.in_grammar());
    feed(c, "{\"a\":1}");
    EXPECT_TRUE(c.in_grammar());
    EXPECT_TRUE(c.complete());
}

TEST(Constraint, OptionalReasoning) {
    TagVocab tv;
    {  // the model opens the block itself
        engine::Constraint c(spec_for(tv, engine::ConstraintSpec::Start::OptionalReasoning));
        EXPECT_TRUE(c.mask().test(tv.open));
        EXPECT_TRUE(c.mask().test('{'));
        EXPECT_FALSE(c.mask().test('x'));
        c.accept(tv.open);
        feed(c, "free text");
        c.accept(tv.close);
        feed(c, " {\"a\":1}");
        EXPECT_TRUE(c.complete());
    }
    {  // or answers at once
        engine::Constraint c(spec_for(tv, engine::ConstraintSpec::Start::OptionalReasoning));
        feed(c, "{\"a\":1}");
        EXPECT_TRUE(c.complete());
    }
}

// The engine with stories260K: constrained generations are valid JSON, greedy and sampled, and
// unconstrained ones in the same batch are unaffected.
TEST(Constraint, EngineGeneratesValidJson) {
    const std::string path = std::string(YITI_SHARED_DIR) + "/models/stories260K.gguf";
    std::shared_ptr<model::Model> model = model::Model::load(path);
    auto tok = Tokenizer::from_gguf(model->file());
    auto vocab = TokenVocab::from_tokenizer(*tok);
    const ojson schema = ojson::parse(R"({"type":"object","properties":{
        "name":{"type":"string","maxLength":8},"kind":{"enum":["cat","dog"]},
        "tags":{"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"maxItems":3}},
        "required":["name","kind","tags"],"additionalProperties":false})");
    auto spec = std::make_shared<engine::ConstraintSpec>();
    spec->cache = std::make_shared<MaskCache>(json_schema_grammar(schema), vocab);
    spec->cv = engine::ConstraintVocab::build(vocab);

    engine::EngineOptions eo;
    eo.n_threads = 2;
    eo.n_parallel = 4;
    eo.n_ctx_per_seq = 512;
    eo.n_ctx = 2048;
    engine::Engine eng(model, eo);
    struct Out {
        std::vector<int32_t> toks;
        engine::FinishReason fr = engine::FinishReason::None;
    };
    std::vector<std::future<Out>> futs;
    for (int i = 0; i < 8; ++i) {
        engine::GenerateRequest r;
        r.prompt = tok->encode("Once upon a time", true, false);
        r.sampling.temperature = i == 0 ? 0.0f : 1.0f;
        r.sampling.seed = (uint64_t)i;
        r.sampling.top_k = 0;
        r.sampling.top_p = 1;
        r.sampling.min_p = 0;
        r.max_tokens = 300;
        r.eog_tokens = tok->eog_ids();
        if (i != 7) r.constraint = spec;
        auto prom = std::make_shared<std::promise<Out>>();
        auto out = std::make_shared<Out>();
        eng.submit(r, [prom, out](const engine::TokenEvent& ev) {
            if (ev.token >= 0 && !ev.is_eog) out->toks.push_back(ev.token);
            if (ev.finish != engine::FinishReason::None) {
                out->fr = ev.finish;
                prom->set_value(*out);
            }
            return true;
        });
        futs.push_back(prom->get_future());
    }
    for (int i = 0; i < 8; ++i) {
        Out o = futs[(size_t)i].get();
        std::string text;
        for (int32_t t : o.toks) text += tok->token_to_piece(t, false);
        if (i == 7) continue;  // unconstrained
        EXPECT_EQ(o.fr, engine::FinishReason::Stop) << text;
        ojson j;
        ASSERT_NO_THROW(j = ojson::parse(text)) << text;
        EXPECT_TRUE(j["kind"] == "cat" || j["kind"] == "dog") << text;
        EXPECT_LE(j["tags"].size(), 3u);
    }
}

// A benchmark, not a test (run with --gtest_also_run_disabled_tests
// --gtest_filter='*BenchStepOverhead*'): on SmolLM2's 49k vocabulary, the time per decode step that
// the constraint adds (mask + masked sampling + accept + completion check, warm mask cache)
// against unconstrained sampling of the same logits. Compare with the forward pass's time per
// token to get the overhead.
TEST(Constraint, DISABLED_BenchStepOverhead) {
    const std::string path = std::string(YITI_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    std::shared_ptr<model::Model> model = model::Model::load(path);
    auto tok = Tokenizer::from_gguf(model->file());
    auto vocab = TokenVocab::from_tokenizer(*tok);
    const ojson schema = ojson::parse(R"({"type":"object","properties":{
        "name":{"type":"string","maxLength":12},"kind":{"enum":["cat","dog","bird"]},
        "age":{"type":"integer","minimum":0,"maximum":120},"owner":{"$ref":"#/$defs/p"},
        "tags":{"type":"array","items":{"type":"string","maxLength":8},"maxItems":3}},
        "required":["name","kind","age","owner","tags"],"additionalProperties":false,
        "$defs":{"p":{"type":"object","properties":{"first":{"type":"string","maxLength":10},"vip":{"type":"boolean"}},
        "required":["first","vip"],"additionalProperties":false}}})");
    auto spec = std::make_shared<engine::ConstraintSpec>();
    spec->cache = std::make_shared<MaskCache>(json_schema_grammar(schema), vocab);
    spec->cv = engine::ConstraintVocab::build(vocab);
    const int64_t V = model->hparams().n_vocab;
    std::mt19937 rng(3);
    std::normal_distribution<float> N(0, 2);
    std::vector<float> logits((size_t)V);
    using clk = std::chrono::steady_clock;
    double t_con = 0, t_free = 0, t_mask = 0, t_free40 = 0;
    int64_t steps = 0;
    for (int doc = 0; doc < 41; ++doc) {
        SamplerParams p;
        p.temperature = 0.8f;
        p.top_k = 0;
        p.top_p = 1;
        p.min_p = 0;
        p.seed = (uint64_t)doc;
        Sampler sc(p, V), sf(p, V);
        SamplerParams p40 = p;
        p40.top_k = 40;
        Sampler sf40(p40, V);
        engine::Constraint c(spec);
        std::vector<int32_t> hist = {1};
        for (int i = 0; i < 400 && !c.complete(); ++i) {
            for (auto& l : logits) l = N(rng);
            auto t0 = clk::now();
            const sample::TokenMask& m = c.mask();
            auto tm = clk::now();
            const int32_t t = sc.sample(logits.data(), hist, &m);
            auto ts = clk::now();
            c.accept(t);
            (void)c.complete();
            auto t1 = clk::now();
            (void)sf.sample(logits.data(), hist);
            auto t2 = clk::now();
            (void)sf40.sample(logits.data(), hist);
            auto t3 = clk::now();
            hist.push_back(t);
            if (doc == 0) continue;  // warm-up: fills the mask cache
            t_con += std::chrono::duration<double>(t1 - t0).count();
            t_free += std::chrono::duration<double>(t2 - t1).count();
            t_free40 += std::chrono::duration<double>(t3 - t2).count();
            t_mask += std::chrono::duration<double>((tm - t0) + (t1 - ts)).count();
            steps++;
        }
    }
    printf("SmolLM2 vocab %d, %lld steps (temperature 0.8): constrained %.1f us/step (of which mask + accept + "
           "completion check %.1f us), unconstrained sampling %.1f us/step with top_k 0, %.1f us/step with top_k 40\n",
           vocab->size(), (long long)steps, t_con / steps * 1e6, t_mask / steps * 1e6, t_free / steps * 1e6,
           t_free40 / steps * 1e6);
}
