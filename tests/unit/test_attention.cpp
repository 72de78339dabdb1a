// cpu::attention (whichever implementation the CPU gets) against a double-precision reference over
// the paged cache, for grouped-query shapes (n_rep 1, 3, 4, 8), F16 and F32 caches, prompts that span
// several cache blocks and continue an existing sequence; and a token's output must not depend on
// the other tokens of its batch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/threadpool.h"
#include "cpu/ops.h"
#include "kv/kv_cache.h"

using namespace yiti;

namespace {

struct AttnShape {
    int n_head, n_head_kv;
    int64_t dk, dv;
    DType type;
    // A one-layer cache layout for this shape.
    kv::KVLayout layout() const {
        kv::KVLayout L;
        L.n_layer = 1;
        L.k_dim = n_head_kv * dk;
        L.v_dim = n_head_kv * dv;
        L.type = type;
        return L;
    }
};

// Reference: softmax(q . k * scale) v in double over positions 0..pos, reading the cache's stored values.
void reference(const AttnShape& s, kv::KVCache& cache, const kv::SeqKV& seq, const float* q, int64_t pos, float scale,
               float* out) {
    const int n_rep = s.n_head / s.n_head_kv;
    std::vector<float> k((size_t)(s.n_head_kv * s.dk)), v((size_t)(s.n_head_kv * s.dv));
    const auto to_f = [&](const uint8_t* src, float* dst, int64_t n) {
        if (s.type == DType::F32) memcpy(dst, src, (size_t)n * 4);
        else
            for (int64_t i = 0; i < n; ++i) {
                uint16_t h;
                memcpy(&h, src + 2 * i, 2);
                const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 31, man = h & 1023;
                float f;
                if (exp == 0) f = std::ldexp((float)man, -24);
                else if (exp == 31) f = INFINITY;
                else f = std::ldexp((float)(man | 1024), (int)exp - 25);
                dst[i] = sign ? -f : f;
            }
    };
    for (int h = 0; h < s.n_head; ++h) {
        const int hkv = h / n_rep;
        std::vector<double> sc((size_t)(pos + 1));
        double mx = -INFINITY;
        for (int64_t p = 0; p <= pos; ++p) {
            to_f(cache.k_row(0, seq, p), k.data(), s.n_head_kv * s.dk);
            double d = 0;
            for (int64_t i = 0; i < s.dk; ++i) d += (double)q[h * s.dk + i] * k[(size_t)(hkv * s.dk + i)];
            sc[(size_t)p] = d * scale;
            mx = std::max(mx, sc[(size_t)p]);
        }
        double sum = 0;
        for (auto& x : sc) sum += x = std::exp(x - mx);
        std::vector<double> o((size_t)s.dv, 0.0);
        for (int64_t p = 0; p <= pos; ++p) {
            to_f(cache.v_row(0, seq, p), v.data(), s.n_head_kv * s.dv);
            for (int64_t i = 0; i < s.dv; ++i) o[(size_t)i] += sc[(size_t)p] * v[(size_t)(hkv * s.dv + i)];
        }
        for (int64_t i = 0; i < s.dv; ++i) out[h * s.dv + i] = (float)(o[(size_t)i] / sum);
    }
}

}  // namespace

// A new cache's slots hold zeros (never NaNs a kernel could trip over), in both halves.
TEST(KVCacheStorage, NewSlotsAreZero) {
    kv::KVLayout L;
    L.n_layer = 3;
    L.k_dim = 96;
    L.v_dim = 64;
    L.type = DType::F16;
    kv::KVCache cache(L, 100);
    for (int il = 0; il < L.n_layer; ++il)
        for (int b = 0; b < (int)(cache.capacity_tokens() / L.block_size); ++b) {
            const uint8_t* k = cache.k_block(il, b);
            const uint8_t* v = cache.v_block(il, b);
            for (size_t i = 0; i < cache.k_row_bytes() * (size_t)L.block_size; ++i) ASSERT_EQ(k[i], 0) << il << " " << b;
            for (size_t i = 0; i < cache.v_row_bytes() * (size_t)L.block_size; ++i) ASSERT_EQ(v[i], 0) << il << " " << b;
        }
    EXPECT_EQ(cache.bytes(), (size_t)L.n_layer * (size_t)cache.capacity_tokens() * (96 + 64) * 2);
}

TEST(Attention, MatchesReference) {
    ThreadPool pool(2);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const AttnShape setups[] = {{9, 3, 64, 64, DType::F16}, {32, 4, 64, 64, DType::F16}, {4, 4, 128, 128, DType::F32},
                            {8, 2, 64, 64, DType::F32}, {16, 1, 96, 64, DType::F16}};
    for (const AttnShape& s : setups) {
        const kv::KVLayout L = s.layout();
        kv::KVCache cache(L, 256);
        kv::SeqKV seq;
        const float scale = 1.0f / std::sqrt((float)s.dk);
        // Two passes: 45 tokens from position 0, then 30 more continuing the sequence.
        for (auto [pos0, n] : {std::pair<int, int>{0, 45}, {45, 30}}) {
            ASSERT_TRUE(cache.reserve(seq, pos0 + n));
            std::vector<float> q((size_t)(n * s.n_head * s.dk)), kr((size_t)L.k_dim), vr((size_t)L.v_dim);
            for (auto& x : q) x = nd(rng) * 2.0f;
            for (int t = 0; t < n; ++t) {
                for (auto& x : kr) x = nd(rng);
                for (auto& x : vr) x = nd(rng);
                cpu::store_kv_row(s.type, kr.data(), cache.k_row(0, seq, pos0 + t), L.k_dim);
                cpu::store_kv_row(s.type, vr.data(), cache.v_row(0, seq, pos0 + t), L.v_dim);
            }
            cpu::AttnParams p;
            p.n_head = s.n_head;
            p.n_head_kv = s.n_head_kv;
            p.head_dim_k = s.dk;
            p.head_dim_v = s.dv;
            p.scale = scale;
            std::vector<float> out((size_t)(n * s.n_head * s.dv)), ref((size_t)(s.n_head * s.dv));
            cpu::attention(pool, p, cache, 0, {cpu::AttnSeq{&seq, 0, n, pos0}}, q.data(), out.data());
            for (int t = 0; t < n; ++t) {
                reference(s, cache, seq, q.data() + (size_t)t * s.n_head * s.dk, pos0 + t, scale, ref.data());
                for (size_t i = 0; i < ref.size(); ++i)
                    ASSERT_NEAR(out[(size_t)t * ref.size() + i], ref[i], 1e-4f + 1e-4f * std::fabs(ref[i]))
                        << "heads " << s.n_head << "/" << s.n_head_kv << " dk " << s.dk << " pos " << pos0 + t << " i " << i;
            }
            seq.n_tokens = pos0 + n;
        }
        cache.release(seq);
    }
}

TEST(Attention, TokenIndependentOfBatch) {
    ThreadPool pool(2);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    // {16, 1}: one KV head (as MLA's latent cache), whose heads a lone token splits between the threads.
    for (const AttnShape& s : {AttnShape{9, 3, 64, 64, DType::F16}, AttnShape{16, 1, 96, 64, DType::F16}}) {
    const kv::KVLayout L = s.layout();
    kv::KVCache cache(L, 256);
    kv::SeqKV seq;
    const int n = 40;
    ASSERT_TRUE(cache.reserve(seq, n));
    std::vector<float> kr((size_t)L.k_dim), vr((size_t)L.v_dim), q((size_t)(n * s.n_head * s.dk));
    for (auto& x : q) x = nd(rng);
    for (int t = 0; t < n; ++t) {
        for (auto& x : kr) x = nd(rng);
        for (auto& x : vr) x = nd(rng);
        cpu::store_kv_row(s.type, kr.data(), cache.k_row(0, seq, t), L.k_dim);
        cpu::store_kv_row(s.type, vr.data(), cache.v_row(0, seq, t), L.v_dim);
    }
    cpu::AttnParams p;
    p.n_head = s.n_head;
    p.n_head_kv = s.n_head_kv;
    p.head_dim_k = s.dk;
    p.head_dim_v = s.dv;
    p.scale = 0.125f;
    const size_t orow = (size_t)(s.n_head * s.dv);
    std::vector<float> all(n * orow);
    cpu::attention(pool, p, cache, 0, {cpu::AttnSeq{&seq, 0, n, 0}}, q.data(), all.data());
    for (int t : {0, 7, 16, 17, 31, 39}) {
        // Token t alone (position t): its query is row t of q, its output row t of out.
        std::vector<float> out(n * orow, 0.0f);
        cpu::attention(pool, p, cache, 0, {cpu::AttnSeq{&seq, t, 1, t}}, q.data(), out.data());
        EXPECT_EQ(0, memcmp(out.data() + t * orow, all.data() + t * orow, orow * sizeof(float)))
            << "heads " << s.n_head << "/" << s.n_head_kv << " token " << t;
    }
    cache.release(seq);
    }
}
