// Op tests for the i-quants (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S with Q8_K activations):
//   IQuantSpec    the reference against ggml's definitions (hand-built blocks, ggml-shaped dequant loops,
//                 the tensors of the synth-llama i-quant files)
//   IQuantRef     the reference dot product against a float dot of the dequantized values
//   IQuantKernels every fast CPU kernel level against the reference
//   IQuantBench   (disabled) rough single-thread speed
// The types are read-only (no quantizer): weight rows are random block bytes (every bit pattern of
// indices, signs and scales, with sane fp16 scales) and real rows from the shared model files.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "cpu/kernels.h"
#include "gguf/gguf.h"
#include "quant/blocks.h"
#include "quant/iq_grids.h"
#include "quant/quant.h"

using namespace yiti;
using yiti::cpu::Isa;

namespace {

const DType kTypes[] = {DType::IQ2_XXS, DType::IQ2_XS, DType::IQ2_S, DType::IQ3_XXS,
                        DType::IQ3_S,   DType::IQ1_S,  DType::IQ1_M};
const int64_t kSizes[] = {256, 2048, 4352};
const int kTileSizes[] = {1, 3, 4, 5, 8, 17};

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return (double)(next() >> 11) * 0x1p-53; }
    float normal() {
        const double u1 = uniform() + 0x1p-60, u2 = uniform();
        return (float)(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
};

size_t block_bytes(DType t) { return dtype_info(t).type_size; }

std::vector<float> dequantize(DType t, const uint8_t* q, int64_t n) {
    std::vector<float> y(n);
    quant::dequantize_row_ref(t, q, y.data(), n);
    return y;
}

std::vector<uint8_t> quantize_q8_K(const std::vector<float>& x) {
    std::vector<uint8_t> q(row_size(DType::Q8_K, (int64_t)x.size()));
    quant::quantize_row_ref(DType::Q8_K, x.data(), q.data(), (int64_t)x.size());
    return q;
}

std::vector<float> random_row(Rng& rng, int64_t n, int kind) {
    std::vector<float> x(n);
    const float sigma = std::pow(10.0f, (float)(rng.uniform() * 4.0 - 3.0));
    for (auto& v : x) v = sigma * rng.normal();
    if (kind % 3 == 1)
        for (int k = 0; k < 8; ++k) x[rng.next() % n] *= 12.0f;
    if (kind % 3 == 2)
        for (auto& v : x) v = v + 0.5f * sigma;
    if (n >= 2 * QK_K && kind == 0)
        for (int e = 0; e < QK_K; ++e) x[e] = 0.0f;
    return x;
}

// Set the fp16 super-block scale of block blk to h.
void set_d(DType t, uint8_t* blk, uint16_t h) {
    if (t == DType::IQ1_M) {  // spread over the top nibbles of the four uint16 scale words
        uint16_t sc[4];
        memcpy(sc, ((block_iq1_m*)blk)->scales, 8);
        for (int k = 0; k < 4; ++k) sc[k] = (uint16_t)((sc[k] & 0x0FFF) | (((h >> (4 * k)) & 15) << 12));
        memcpy(((block_iq1_m*)blk)->scales, sc, 8);
    } else {
        memcpy(blk, &h, 2);  // every other i-quant block starts with d
    }
}

// Random block bytes with sane fp16 scales (one block in 16 gets d = 0).
std::vector<uint8_t> random_blocks(Rng& rng, DType t, int64_t n) {
    std::vector<uint8_t> q(row_size(t, n));
    for (auto& b : q) b = (uint8_t)rng.next();
    const size_t bs = block_bytes(t);
    for (size_t off = 0; off < q.size(); off += bs) {
        const float v = rng.next() % 16 == 0 ? 0.0f : (float)((rng.uniform() * 2.0 - 1.0) * 0.02);
        set_d(t, &q[off], fp32_to_fp16(v));
    }
    return q;
}

double dot_magnitude(const std::vector<float>& w, const std::vector<float>& x) {
    double m = 0;
    for (size_t e = 0; e < w.size(); ++e) m += std::fabs((double)x[e]) * std::fabs((double)w[e]);
    return m;
}

// Bound on |a - b| for two float evaluations of one i-quant dot product over nb blocks: both compute
// the same exact integer sums per block and differ only in float rounding (per block the scale
// product, the int->float conversions of the lanes and the accumulation; a fixed number for the
// horizontal sum), each rounding at most 2^-24 of a partial sum bounded by M = sum |x_e| |w_e|.
// As for the k-quants (test_ops_kquants.cpp).
double dot_tolerance(int64_t nb, double M) { return (4.0 * (double)nb + 16.0) * 0x1p-24 * M + 1e-30; }

std::vector<Isa> isa_levels() {
    std::vector<Isa> v;
    for (int i = 0; i <= (int)cpu::cpu_best_isa(); ++i) v.push_back((Isa)i);
    return v;
}

std::string label(DType t, int64_t n, Isa isa) {
    return std::string(dtype_name(t)) + " n=" + std::to_string(n) + " isa=" + cpu::isa_name(isa);
}

void expect_same_floats(const float* a, const float* b, int64_t n, const std::string& what) {
    int64_t bad = 0;
    for (int64_t e = 0; e < n; ++e)
        if (fp32_to_bits(a[e]) != fp32_to_bits(b[e]) && ++bad <= 5)
            ADD_FAILURE() << what << ": element " << e << ": " << a[e] << " != " << b[e];
    EXPECT_EQ(bad, 0) << what;
}

// ------------------------------------------------------------------------------------------------
// ggml's dequantization loops, restated in ggml's own loop structure and float expressions (e.g.
// d * (0.5f + l) * 0.25f, grid + delta), independent of the reference's common model, to check the
// reference against ggml's definition bit for bit.

uint8_t ksigns(int i) { return (uint8_t)(i | (__builtin_popcount(i) & 1) << 7); }
const uint8_t* grid8(const uint64_t* g, int i) { return (const uint8_t*)(g + i); }
const uint8_t* grid4(const uint32_t* g, int i) { return (const uint8_t*)(g + i); }

void ggml_shaped_dequant(DType t, const uint8_t* src, float* y, int64_t n) {
    const size_t bs = block_bytes(t);
    for (int64_t i = 0; i < n / QK_K; ++i) {
        const uint8_t* blk = src + i * bs;
        switch (t) {
            case DType::IQ2_XXS: {
                const auto& x = *(const block_iq2_xxs*)blk;
                const float d = fp16_to_fp32(x.d);
                for (int ib32 = 0; ib32 < 8; ++ib32) {
                    uint32_t aux32[2];
                    memcpy(aux32, x.qs + 4 * ib32, 8);
                    const uint8_t* aux8 = (const uint8_t*)aux32;
                    const float db = d * (0.5f + (aux32[1] >> 28)) * 0.25f;
                    for (int l = 0; l < 4; ++l) {
                        const uint8_t* grid = grid8(k_iq2xxs_grid, aux8[l]);
                        const uint8_t signs = ksigns((aux32[1] >> 7 * l) & 127);
                        for (int j = 0; j < 8; ++j) y[j] = db * grid[j] * (signs & (1 << j) ? -1.f : 1.f);
                        y += 8;
                    }
                }
                break;
            }
            case DType::IQ2_XS: {
                const auto& x = *(const block_iq2_xs*)blk;
                const float d = fp16_to_fp32(x.d);
                for (int ib32 = 0; ib32 < 8; ++ib32) {
                    const float db[2] = {d * (0.5f + (x.scales[ib32] & 0xf)) * 0.25f,
                                         d * (0.5f + (x.scales[ib32] >> 4)) * 0.25f};
                    for (int l = 0; l < 4; ++l) {
                        const uint8_t* grid = grid8(k_iq2xs_grid, x.qs[4 * ib32 + l] & 511);
                        const uint8_t signs = ksigns(x.qs[4 * ib32 + l] >> 9);
                        for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * grid[j] * (signs & (1 << j) ? -1.f : 1.f);
                        y += 8;
                    }
                }
                break;
            }
            case DType::IQ2_S: {
                const auto& x = *(const block_iq2_s*)blk;
                const float d = fp16_to_fp32(x.d);
                const uint8_t* qs = x.qs;
                const uint8_t* signs = qs + QK_K / 8;
                for (int ib32 = 0; ib32 < 8; ++ib32) {
                    const float db[2] = {d * (0.5f + (x.scales[ib32] & 0xf)) * 0.25f,
                                         d * (0.5f + (x.scales[ib32] >> 4)) * 0.25f};
                    for (int l = 0; l < 4; ++l) {
                        const uint8_t* grid = grid8(k_iq2s_grid, qs[l] | (x.qh[ib32] << (8 - 2 * l) & 0x300));
                        for (int j = 0; j < 8; ++j) y[j] = db[l / 2] * grid[j] * (signs[l] & (1 << j) ? -1.f : 1.f);
                        y += 8;
                    }
                    qs += 4;
                    signs += 4;
                }
                break;
            }
            case DType::IQ3_XXS: {
                const auto& x = *(const block_iq3_xxs*)blk;
                const float d = fp16_to_fp32(x.d);
                const uint8_t* qs = x.qs;
                const uint8_t* scales_and_signs = qs + QK_K / 4;
                for (int ib32 = 0; ib32 < 8; ++ib32) {
                    uint32_t aux32;
                    memcpy(&aux32, scales_and_signs + 4 * ib32, 4);
                    const float db = d * (0.5f + (aux32 >> 28)) * 0.5f;
                    for (int l = 0; l < 4; ++l) {
                        const uint8_t signs = ksigns((aux32 >> 7 * l) & 127);
                        const uint8_t* g1 = grid4(k_iq3xxs_grid, qs[2 * l]);
                        const uint8_t* g2 = grid4(k_iq3xxs_grid, qs[2 * l + 1]);
                        for (int j = 0; j < 4; ++j) {
                            y[j + 0] = db * g1[j] * (signs & (1 << j) ? -1.f : 1.f);
                            y[j + 4] = db * g2[j] * (signs & (1 << (j + 4)) ? -1.f : 1.f);
                        }
                        y += 8;
                    }
                    qs += 8;
                }
                break;
            }
            case DType::IQ3_S: {
                const auto& x = *(const block_iq3_s*)blk;
                const float d = fp16_to_fp32(x.d);
                const uint8_t* qs = x.qs;
                const uint8_t* qh = x.qh;
                const uint8_t* signs = x.signs;
                for (int ib32 = 0; ib32 < 8; ib32 += 2) {
                    const float dbs[2] = {d * (1 + 2 * (x.scales[ib32 / 2] & 0xf)),
                                          d * (1 + 2 * (x.scales[ib32 / 2] >> 4))};
                    for (int half = 0; half < 2; ++half) {
                        for (int l = 0; l < 4; ++l) {
                            const uint8_t* g1 = grid4(k_iq3s_grid, qs[2 * l] | ((qh[half] << (8 - 2 * l)) & 256));
                            const uint8_t* g2 = grid4(k_iq3s_grid, qs[2 * l + 1] | ((qh[half] << (7 - 2 * l)) & 256));
                            for (int j = 0; j < 4; ++j) {
                                y[j + 0] = dbs[half] * g1[j] * (signs[l] & (1 << j) ? -1.f : 1.f);
                                y[j + 4] = dbs[half] * g2[j] * (signs[l] & (1 << (j + 4)) ? -1.f : 1.f);
                            }
                            y += 8;
                        }
                        qs += 8;
                        signs += 4;
                    }
                    qh += 2;
                }
                break;
            }
            case DType::IQ1_S: {
                const auto& x = *(const block_iq1_s*)blk;
                const float d = fp16_to_fp32(x.d);
                const uint8_t* qs = x.qs;
                for (int ib = 0; ib < 8; ++ib) {
                    const float dl = d * (2 * ((x.qh[ib] >> 12) & 7) + 1);
                    const float delta = x.qh[ib] & 0x8000 ? -0.125f : 0.125f;
                    for (int l = 0; l < 4; ++l) {
                        const int8_t* grid = (const int8_t*)(k_iq1s_grid + (qs[l] | (((x.qh[ib] >> 3 * l) & 7) << 8)));
                        for (int j = 0; j < 8; ++j) y[j] = dl * (grid[j] + delta);
                        y += 8;
                    }
                    qs += 4;
                }
                break;
            }
            case DType::IQ1_M: {
                const auto& x = *(const block_iq1_m*)blk;
                uint16_t sc[4];
                memcpy(sc, x.scales, 8);
                const uint16_t dh = (uint16_t)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
                const float d = fp16_to_fp32(dh);
                const uint8_t* qs = x.qs;
                const uint8_t* qh = x.qh;
                for (int ib = 0; ib < 8; ++ib) {
                    const float dl1 = d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 0)) & 0x7) + 1);
                    const float dl2 = d * (2 * ((sc[ib / 2] >> (6 * (ib % 2) + 3)) & 0x7) + 1);
                    const int idx[4] = {qs[0] | ((qh[0] << 8) & 0x700), qs[1] | ((qh[0] << 4) & 0x700),
                                        qs[2] | ((qh[1] << 8) & 0x700), qs[3] | ((qh[1] << 4) & 0x700)};
                    const float delta[4] = {qh[0] & 0x08 ? -0.125f : 0.125f, qh[0] & 0x80 ? -0.125f : 0.125f,
                                            qh[1] & 0x08 ? -0.125f : 0.125f, qh[1] & 0x80 ? -0.125f : 0.125f};
                    for (int l = 0; l < 4; ++l) {
                        const int8_t* grid = (const int8_t*)(k_iq1s_grid + idx[l]);
                        for (int j = 0; j < 8; ++j) y[j] = (l < 2 ? dl1 : dl2) * (grid[j] + delta[l]);
                        y += 8;
                    }
                    qs += 4;
                    qh += 2;
                }
                break;
            }
            default: FAIL() << "not an i-quant type";
        }
    }
}

// The tensors of type t in the first shared i-quant model file that has any (llama-quantize's mixes
// put IQ2_S tensors in the IQ3_XXS file, not in the IQ2_S one). file is null when the files are absent.
struct FileRows {
    std::unique_ptr<gguf::File> file;
    std::vector<const gguf::TensorInfo*> tensors;
};

FileRows file_rows(DType t) {
    FileRows r;
    const std::string base = std::string(YITI_SHARED_DIR) + "/models/synth-llama-";
    for (const char* name : {"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S"}) {
        const std::string path = base + name + ".gguf";
        FILE* f = fopen(path.c_str(), "rb");
        if (!f) return r;
        fclose(f);
        r.file = gguf::File::open(path);
        for (const auto& ti : r.file->tensors())
            if (ti.type == t) r.tensors.push_back(&ti);
        if (!r.tensors.empty()) break;
    }
    return r;
}

}  // namespace

// ================================================================================================
// IQuantSpec

TEST(IQuantSpec, Traits) {
    const struct {
        DType t;
        uint32_t id;
        const char* name;
        size_t bytes;
    } want[] = {{DType::IQ2_XXS, 16, "iq2_xxs", 66}, {DType::IQ2_XS, 17, "iq2_xs", 74},
                {DType::IQ3_XXS, 18, "iq3_xxs", 98}, {DType::IQ1_S, 19, "iq1_s", 50},
                {DType::IQ3_S, 21, "iq3_s", 110},    {DType::IQ2_S, 22, "iq2_s", 82},
                {DType::IQ1_M, 29, "iq1_m", 56}};
    for (const auto& w : want) {
        EXPECT_EQ((uint32_t)w.t, w.id);
        const auto& info = dtype_info(w.t);
        EXPECT_STREQ(info.name, w.name);
        EXPECT_EQ(info.block_size, QK_K);
        EXPECT_EQ(info.type_size, w.bytes);
        EXPECT_TRUE(info.supported) << w.name;
        EXPECT_EQ(dtype_from_name(w.name), w.t);
        const quant::RefTraits* r = quant::ref_traits(w.t);
        ASSERT_NE(r, nullptr) << w.name;
        EXPECT_EQ(r->vec_dot_type, DType::Q8_K);
        EXPECT_NE(r->to_float, nullptr);
        EXPECT_EQ(r->from_float, nullptr);  // read-only types
        EXPECT_NE(r->vec_dot, nullptr);
    }
    // The sign rule: ggml's ksigns_iq2xs table starts 0, 129, 130, 3, 132 and ends 255.
    EXPECT_EQ(iq_signs8(0), 0);
    EXPECT_EQ(iq_signs8(1), 129);
    EXPECT_EQ(iq_signs8(2), 130);
    EXPECT_EQ(iq_signs8(3), 3);
    EXPECT_EQ(iq_signs8(4), 132);
    EXPECT_EQ(iq_signs8(127), 255);
    // A few grid entries (first, last) as GGUF defines them.
    EXPECT_EQ(k_iq2xxs_grid[0], 0x0808080808080808ull);
    EXPECT_EQ(k_iq2xxs_grid[255], 0x2b2b2b1908081908ull);
    EXPECT_EQ(k_iq2s_grid[1023], 0x2b2b2b2b2b2b2b2bull);
    EXPECT_EQ(k_iq1s_grid[2047], 0x0101010101010101ull);
    EXPECT_EQ(k_iq2xs_grid[1], 0x080808080808082bull);
    EXPECT_EQ(k_iq3xxs_grid[0], 0x04040404u);
    EXPECT_EQ(k_iq3s_grid[0], 0x01010101u);
    EXPECT_EQ(k_iq1s_grid[0], 0xffffffffffffffffull);
    EXPECT_EQ(k_iq1s_grid[1], 0xffffffffffffff01ull);
}

// Random block bytes dequantized by the reference == ggml's loops, bit for bit.
TEST(IQuantSpec, MatchesGgmlDequantLoops) {
    Rng rng(101);
    for (DType t : kTypes) {
        const int64_t n = 64 * QK_K;
        const auto q = random_blocks(rng, t, n);
        const auto ref = dequantize(t, q.data(), n);
        std::vector<float> want(n);
        ggml_shaped_dequant(t, q.data(), want.data(), n);
        expect_same_floats(ref.data(), want.data(), n, dtype_name(t));
    }
}

// The same on every tensor of that type in the shared model file (imatrix-quantized real layouts).
TEST(IQuantSpec, MatchesGgmlDequantLoopsOnFiles) {
    for (DType t : kTypes) {
        const FileRows fr = file_rows(t);
        if (!fr.file) GTEST_SKIP() << "shared i-quant models not found";
        ASSERT_FALSE(fr.tensors.empty()) << dtype_name(t);
        printf("  %-7s %zu tensors in %s\n", dtype_name(t), fr.tensors.size(), fr.file->path().c_str());
        int64_t nz = 0, total = 0;
        for (const auto* ti : fr.tensors) {
            const int64_t n = ti->n_elements();
            const auto ref = dequantize(t, ti->data, n);
            std::vector<float> want(n);
            ggml_shaped_dequant(t, ti->data, want.data(), n);
            expect_same_floats(ref.data(), want.data(), n, std::string(dtype_name(t)) + " " + ti->name);
            for (float v : ref) nz += v != 0.0f && std::isfinite(v);
            total += n;
        }
        // Real weights decode to finite, mostly non-zero values.
        EXPECT_GT(nz, total / 2) << dtype_name(t);
    }
}

// Hand-built blocks with known values.
TEST(IQuantSpec, HandBuilt) {
    const float d = 0.5f;
    {  // IQ2_XXS: chunk 0 grid index 0 (all 8), signs group 0 = 1 (element 0 and, by parity, 7
       // negative), scale field 3 -> (2*3+1)/8 * d * 8 = 3.5
        block_iq2_xxs b{};
        b.d = fp32_to_fp16(d);
        const uint32_t a = 0, s = 1u | (3u << 28);
        memcpy(&b.qs[0], &a, 4);
        memcpy(&b.qs[2], &s, 4);
        std::vector<float> y(QK_K);
        quant::dequantize_row_ref(DType::IQ2_XXS, &b, y.data(), QK_K);
        EXPECT_EQ(y[0], -3.5f);
        EXPECT_EQ(y[1], 3.5f);
        EXPECT_EQ(y[7], -3.5f);
        EXPECT_EQ(y[8], 3.5f);
        EXPECT_EQ(y[32], 0.0625f * 8);  // chunk 1: scale field 0 -> d/8 * 1 * 8
    }
    {  // IQ3_S: chunk 1 (scale field = high nibble of scales[0] = 2 -> 5 d), grid index 256 via qh
        block_iq3_s b{};
        b.d = fp32_to_fp16(d);
        b.scales[0] = 0x20;
        b.qh[1] = 1;        // element quad 8 (first of chunk 1) uses index 256 + qs[8]
        b.qs[8] = 0;
        b.signs[4] = 0x02;  // element 33 negative
        std::vector<float> y(QK_K);
        quant::dequantize_row_ref(DType::IQ3_S, &b, y.data(), QK_K);
        const uint8_t* g = (const uint8_t*)&k_iq3s_grid[256];
        EXPECT_EQ(y[32], 2.5f * g[0]);
        EXPECT_EQ(y[33], -2.5f * g[1]);
        EXPECT_EQ(y[0], 0.5f * 1);  // chunk 0: scale 1, grid[0] = 1
    }
    {  // IQ1_S: grid 0 is all -1; shift +1/8 -> value d*(2l+1)*(-1 + 1/8)
        block_iq1_s b{};
        b.d = fp32_to_fp16(d);
        b.qh[0] = (uint16_t)(2u << 12);  // scale field 2 -> 5
        b.qh[1] = 0x8000;                // chunk 1: shift -1/8
        std::vector<float> y(QK_K);
        quant::dequantize_row_ref(DType::IQ1_S, &b, y.data(), QK_K);
        EXPECT_EQ(y[0], 2.5f * -0.875f);
        EXPECT_EQ(y[32], 0.5f * -1.125f);
    }
}

// ================================================================================================
// IQuantRef

TEST(IQuantRef, VecDotMatchesFloatDot) {
    Rng rng(202);
    for (DType t : kTypes)
        for (int64_t n : kSizes)
            for (int row = 0; row < 4; ++row) {
                const auto q = random_blocks(rng, t, n);
                const auto xq = quantize_q8_K(random_row(rng, n, row));
                const auto w = dequantize(t, q.data(), n);
                const auto x = dequantize(DType::Q8_K, xq.data(), n);
                double want = 0;
                for (int64_t e = 0; e < n; ++e) want += (double)w[e] * (double)x[e];
                const float got = quant::ref_traits(t)->vec_dot(n, q.data(), xq.data());
                EXPECT_NEAR(got, want, dot_tolerance(n / QK_K, dot_magnitude(w, x)))
                    << dtype_name(t) << " n=" << n << " row=" << row;
            }
}

// ================================================================================================
// IQuantKernels

namespace {

struct Case {
    std::vector<std::vector<uint8_t>> w;
    std::vector<std::vector<uint8_t>> xq;
};

Case make_case(DType t, int64_t n, uint64_t seed) {
    Rng rng(seed);
    Case c;
    for (int r = 0; r < 17; ++r) c.w.push_back(random_blocks(rng, t, n));
    for (int k = 0; k < 17; ++k) c.xq.push_back(quantize_q8_K(random_row(rng, n, k + 2)));
    return c;
}

}  // namespace

TEST(IQuantKernels, Present) {
    for (DType t : kTypes)
        for (Isa isa : isa_levels()) {
            const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
            ASSERT_NE(k, nullptr) << label(t, 0, isa);
            EXPECT_EQ(k->vec_dot_type, DType::Q8_K);
            // The Q8_K quantizer of the k-quants at the same level (one quantization for both families).
            EXPECT_EQ(k->from_float, cpu::cpu_kernels(DType::Q4_K, isa)->from_float) << label(t, 0, isa);
            EXPECT_NE(k->to_float, nullptr);
            EXPECT_NE(k->vec_dot, nullptr);
            EXPECT_NE(k->gemm, nullptr);
        }
    for (DType t : {DType::Q8_K, DType::Q4_K, DType::IQ4_XS, DType::F32})
        for (Isa isa : isa_levels()) EXPECT_EQ(cpu::cpu_kernels_iquants(t, isa), nullptr) << dtype_name(t);
    printf("  best ISA here: %s\n", cpu::isa_name(cpu::cpu_best_isa()));
}

TEST(IQuantKernels, ToFloatExact) {
    for (DType t : kTypes)
        for (int64_t n : kSizes) {
            const Case c = make_case(t, n, 500 + (uint64_t)n);
            for (Isa isa : isa_levels()) {
                const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
                for (size_t r = 0; r < c.w.size(); r += 4) {
                    const auto want = dequantize(t, c.w[r].data(), n);
                    std::vector<float> got(n);
                    k->to_float(c.w[r].data(), got.data(), n);
                    expect_same_floats(got.data(), want.data(), n, label(t, n, isa) + " row " + std::to_string(r));
                }
            }
        }
}

TEST(IQuantKernels, VecDotAndGemm) {
    for (DType t : kTypes)
        for (int64_t n : kSizes) {
            const Case c = make_case(t, n, 700 + (uint64_t)n);
            const int64_t nb = n / QK_K;
            const size_t wrow = row_size(t, n), xrow = row_size(DType::Q8_K, n);
            const size_t R = c.w.size(), C = c.xq.size();
            std::vector<double> ref(R * C), tol(R * C);
            for (size_t r = 0; r < R; ++r) {
                const auto w = dequantize(t, c.w[r].data(), n);
                for (size_t col = 0; col < C; ++col) {
                    ref[r * C + col] = quant::ref_traits(t)->vec_dot(n, c.w[r].data(), c.xq[col].data());
                    const auto x = dequantize(DType::Q8_K, c.xq[col].data(), n);
                    tol[r * C + col] = dot_tolerance(nb, dot_magnitude(w, x));
                }
            }
            const size_t ld_w = wrow + 3 * block_bytes(t), ld_x = xrow + block_bytes(DType::Q8_K);
            std::vector<uint8_t> W(ld_w * R, 0xEE), X(ld_x * C, 0xEE);
            for (size_t r = 0; r < R; ++r) memcpy(&W[r * ld_w], c.w[r].data(), wrow);
            for (size_t col = 0; col < C; ++col) memcpy(&X[col * ld_x], c.xq[col].data(), xrow);
            for (Isa isa : isa_levels()) {
                const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
                int bad = 0;
                auto check = [&](float got, size_t r, size_t col, const std::string& what) {
                    const double err = std::fabs((double)got - ref[r * C + col]);
                    if (!(err <= tol[r * C + col]) && ++bad <= 5)
                        ADD_FAILURE() << label(t, n, isa) << " " << what << " row " << r << " col " << col << ": got "
                                      << got << ", reference " << ref[r * C + col] << ", tolerance "
                                      << tol[r * C + col];
                };
                for (size_t r = 0; r < R; ++r)
                    for (size_t col = 0; col < C; ++col) {
                        float s = NAN;
                        k->vec_dot(n, &s, c.w[r].data(), c.xq[col].data());
                        check(s, r, col, "vec_dot");
                    }
                for (int nr : kTileSizes)
                    for (int nc : kTileSizes) {
                        const size_t ld_s = (size_t)nr + 2;
                        std::vector<float> S(ld_s * nc, -7.0f);
                        k->gemm(n, S.data(), ld_s, W.data(), ld_w, nr, X.data(), ld_x, nc);
                        const std::string what = "gemm nr=" + std::to_string(nr) + " nc=" + std::to_string(nc);
                        for (int col = 0; col < nc; ++col)
                            for (size_t r = 0; r < ld_s; ++r) {
                                const float got = S[col * ld_s + r];
                                if ((int)r >= nr) {
                                    if (got != -7.0f && ++bad <= 5) ADD_FAILURE() << what << " wrote outside the tile";
                                    continue;
                                }
                                check(got, r, (size_t)col, what);
                            }
                    }
                EXPECT_EQ(bad, 0) << label(t, n, isa) << ": vec_dot/gemm results outside the tolerance";
                // Batch invariance: a column's result does not depend on how many columns or rows are
                // computed together (bit for bit, gemm of any tile size == vec_dot).
                for (int nc : {1, 5, (int)C}) {
                    std::vector<float> S(R * nc);
                    k->gemm(n, S.data(), R, W.data(), ld_w, (int)R, X.data(), ld_x, nc);
                    for (int col = 0; col < nc; ++col)
                        for (size_t r = 0; r < R; ++r) {
                            float v = NAN;
                            k->vec_dot(n, &v, c.w[r].data(), c.xq[col].data());
                            ASSERT_EQ(fp32_to_bits(S[col * R + r]), fp32_to_bits(v))
                                << label(t, n, isa) << " gemm nc=" << nc << " row " << r << " col " << col;
                        }
                }
            }
        }
}

// Fast kernels on real rows of the shared files, activations from the fast quantizer: against the
// reference dot on the same Q8_K data and against a float dot.
TEST(IQuantKernels, FileRows) {
    Rng rng(808);
    for (DType t : kTypes) {
        const FileRows fr = file_rows(t);
        if (!fr.file) GTEST_SKIP() << "shared i-quant models not found";
        ASSERT_FALSE(fr.tensors.empty()) << dtype_name(t);
        for (const auto* ti : fr.tensors) {
            if (ti != fr.tensors.front() && ti != fr.tensors.back()) continue;
            const int64_t n = ti->ne[0];
            const size_t wrow = row_size(t, n);
            const auto xf = random_row(rng, n, 1);
            for (Isa isa : isa_levels()) {
                const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
                std::vector<uint8_t> xq(row_size(DType::Q8_K, n));
                k->from_float(xf.data(), xq.data(), n);
                const auto x = dequantize(DType::Q8_K, xq.data(), n);
                for (int64_t r = 0; r < std::min<int64_t>(ti->ne[1], 16); ++r) {
                    const uint8_t* wr = ti->data + r * wrow;
                    const auto w = dequantize(t, wr, n);
                    double want = 0;
                    for (int64_t e = 0; e < n; ++e) want += (double)w[e] * x[e];
                    const double tol = dot_tolerance(n / QK_K, dot_magnitude(w, x));
                    float s = NAN;
                    k->vec_dot(n, &s, wr, xq.data());
                    EXPECT_NEAR(s, want, tol) << label(t, n, isa) << " " << ti->name << " row " << r;
                    EXPECT_NEAR(s, quant::ref_traits(t)->vec_dot(n, wr, xq.data()), tol) << label(t, n, isa);
                }
            }
        }
    }
}

// ================================================================================================
// IQuantBench: rough single-thread speed (run with --gtest_also_run_disabled_tests).

TEST(IQuantBench, DISABLED_Speed) {
    const int64_t n = 4096, rows = 2048;
    Rng rng(909);
    std::vector<float> xf = random_row(rng, n, 1);
    for (DType t : kTypes) {
        const size_t wrow = row_size(t, n);
        const auto W = random_blocks(rng, t, n * rows);
        for (Isa isa : isa_levels()) {
            if (isa == Isa::Scalar) continue;
            const cpu::CpuKernels* k = cpu::cpu_kernels(t, isa);
            const size_t xrow = row_size(DType::Q8_K, n);
            std::vector<uint8_t> xq(xrow * 64);
            for (int c = 0; c < 64; ++c) k->from_float(xf.data(), &xq[c * xrow], n);
            std::vector<float> out(rows * 64);
            double best = 1e30;
            for (int it = 0; it < 5; ++it) {
                const auto t0 = std::chrono::steady_clock::now();
                for (int64_t r = 0; r < rows; ++r) k->vec_dot(n, &out[r], &W[r * wrow], xq.data());
                best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            double best_g = 1e30;
            for (int it = 0; it < 3; ++it) {
                const auto t0 = std::chrono::steady_clock::now();
                for (int64_t r = 0; r < rows; r += 4)
                    k->gemm(n, &out[r], rows, &W[r * wrow], wrow, 4, xq.data(), xrow, 64);
                best_g = std::min(best_g, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            printf("  %-7s %-12s vec_dot %6.2f GB/s (%5.2f ms, %6.1f Melem/s)   gemm x64: %7.1f GMAC/s\n",
                   dtype_name(t), cpu::isa_name(isa), (double)W.size() / best * 1e-9, best * 1e3,
                   (double)n * rows / best * 1e-6, (double)n * rows * 64 / best_g * 1e-9);
        }
    }
}
