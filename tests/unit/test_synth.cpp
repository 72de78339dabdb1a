// Benchmark tooling: the streaming GGUF writer (byte-identical to the in-memory one), synthetic
// models (they load, tokenize and give finite logits; K-quant mixes put Q6_K where llama.cpp does),
// and the read-bandwidth measurement.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "bench/synth.h"
#include "core/error.h"
#include "core/membw.h"
#include "core/threadpool.h"
#include "engine/session.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

using namespace yiti;

namespace {

std::string temp_path(const std::string& name) {
    return (testing::TempDir().empty() ? std::string("/tmp/") : testing::TempDir()) + "yiti_" +
           std::to_string(getpid()) + "_" + name;
}

std::vector<uint8_t> read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST(GGUFStream, SameBytesAsInMemory) {
    std::vector<float> a(64 * 3), b(32 * 5);
    for (size_t i = 0; i < a.size(); ++i) a[i] = (float)i;
    for (size_t i = 0; i < b.size(); ++i) b[i] = -(float)i;
    std::vector<uint8_t> q(34 * 2, 7);
    gguf::Writer mem;
    mem.set_str("general.architecture", "llama");
    mem.set_alignment(64);
    mem.add_tensor("a", DType::F32, {64, 3}, a.data(), a.size() * 4);
    mem.add_tensor("q", DType::Q8_0, {64, 1}, q.data(), q.size());
    mem.add_tensor("b", DType::F32, {32, 5}, b.data(), b.size() * 4);
    const std::vector<uint8_t> want = mem.to_bytes();

    gguf::Writer st;
    st.set_str("general.architecture", "llama");
    st.set_alignment(64);
    EXPECT_EQ(st.declare_tensor("a", DType::F32, {64, 3}), a.size() * 4);
    st.add_tensor("q", DType::Q8_0, {64, 1}, q.data(), q.size());  // written by the writer in its turn
    st.declare_tensor("b", DType::F32, {32, 5});
    const std::string path = temp_path("stream.gguf");
    st.begin(path);
    EXPECT_EQ(st.current_tensor(), "a");
    // In pieces, one of them across the tensor boundary (q in between is written by the writer).
    std::vector<uint8_t> ab(a.size() * 4 + 40);
    memcpy(ab.data(), a.data(), a.size() * 4);
    memcpy(ab.data() + a.size() * 4, b.data(), 40);
    st.write_data(ab.data(), 100);
    st.write_data(ab.data() + 100, ab.size() - 100);
    EXPECT_EQ(st.current_tensor(), "b");
    EXPECT_EQ(st.current_remaining(), b.size() * 4 - 40);
    st.write_data((const uint8_t*)b.data() + 40, b.size() * 4 - 40);
    st.finish();
    const std::vector<uint8_t> got = read_all(path);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "byte " << i;
    std::remove(path.c_str());
}

TEST(GGUFStream, MissingBytesAreAnError) {
    gguf::Writer st;
    st.declare_tensor("a", DType::F32, {64});
    const std::string path = temp_path("short.gguf");
    st.begin(path);
    std::vector<float> a(10);
    st.write_data(a.data(), a.size() * 4);
    EXPECT_THROW(st.finish(), Error);
    std::remove(path.c_str());
}

TEST(Synth, MixPutsMoreBitsWhereLlamaCppDoes) {
    const bench::SynthShape s = bench::synth_preset("tinyllama");
    const bench::SynthType m = bench::synth_type("Q4_K_M");
    EXPECT_EQ(bench::synth_tensor_type(s, m, "output.weight", -1), DType::Q6_K);
    EXPECT_EQ(bench::synth_tensor_type(s, m, "token_embd.weight", -1), DType::Q4_K);
    EXPECT_EQ(bench::synth_tensor_type(s, m, "blk.0.attn_q.weight", 0), DType::Q4_K);
    int q6_v = 0, q6_down = 0;
    for (int il = 0; il < s.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        q6_v += bench::synth_tensor_type(s, m, p + "attn_v.weight", il) == DType::Q6_K;
        q6_down += bench::synth_tensor_type(s, m, p + "ffn_down.weight", il) == DType::Q6_K;
    }
    EXPECT_GT(q6_v, 0);
    EXPECT_LT(q6_v, s.n_layer);
    EXPECT_EQ(q6_v, q6_down);
    EXPECT_EQ(bench::synth_tensor_type(s, bench::synth_type("q8_0"), "output.weight", -1), DType::Q8_0);
    EXPECT_THROW(bench::synth_type("Q9_X"), Error);
    EXPECT_THROW(bench::synth_preset("nope"), Error);
}

TEST(Synth, SmallModelsLoadTokenizeAndRun) {
    for (const char* preset : {"tiny-llama-test", "tiny-deepseek-test"}) {
        for (const char* type : {"Q4_K_M", "Q8_0"}) {
            const std::string path = temp_path(std::string(preset) + type + ".gguf");
            bench::SynthOptions opt;
            opt.n_threads = 2;
            const bench::SynthResult r = bench::synth_write(bench::synth_preset(preset), bench::synth_type(type), path, opt);
            EXPECT_GT(r.n_params, 0);
            std::shared_ptr<model::Model> m = model::Model::load(path);
            auto tok = Tokenizer::from_gguf(m->file());
            const std::vector<int32_t> ids = tok->encode("Once upon a time, there was a little girl", true, false);
            ASSERT_GE(ids.size(), 4u);
            EXPECT_EQ(ids[0], 1);  // BOS
            EXPECT_LT(ids.size(), 20u) << "the word pieces should merge";
            EXPECT_EQ(tok->decode(std::vector<int32_t>(ids.begin() + 1, ids.end())),
                      "Once upon a time, there was a little girl");
            engine::SessionOptions so;
            so.n_threads = 2;
            so.n_ctx = 64;
            engine::Session s(m, so);
            std::vector<float> logits = s.eval(ids);
            for (int step = 0; step < 3; ++step) logits = s.eval({(int32_t)(step + 300)});
            double ss = 0;
            for (float v : logits) {
                ASSERT_TRUE(std::isfinite(v)) << preset << " " << type;
                ss += (double)v * v;
            }
            EXPECT_GT(ss, 0) << preset << " " << type;
            std::remove(path.c_str());
        }
    }
}

TEST(MemBw, MeasuresSomething) {
    ThreadPool pool(2);
    const MemBwResult r = measure_read_bandwidth(pool, 64u << 20, 2);
    EXPECT_GT(r.gb_per_s, 0.1);
    EXPECT_GE(r.gb_per_s, r.gb_per_s_median);
    EXPECT_EQ(r.threads, 2);
}
