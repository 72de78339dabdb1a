// Packed (repacked-at-load) weight kernels: every packed type against the scalar reference dot
// product, bit-identical columns whatever the batch, row slices and expert slices of packed
// tensors, and the job-list driver against single products.
#include <gtest/gtest.h>

#include <memory>
#include <sys/mman.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "cpu/ops.h"
#include "cpu/packed.h"
#include "cpu/packed_layout.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"

using namespace yiti;

namespace {

const DType kPackedTypes[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_0};

struct PackedMatrix {
    std::vector<uint8_t> raw, packed;
    std::unique_ptr<cpu::PackedWeights> prepared;  // (a stable address through moves)
    Tensor t;
};

// A random [n_mat][n_out][n_in] weight tensor in type t, packed when the CPU has packed kernels.
PackedMatrix make_matrix(DType t, int64_t n_in, int64_t n_out, int64_t n_mat, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    PackedMatrix m;
    const size_t rb = row_size(t, n_in);
    m.raw.resize(rb * (size_t)(n_out * n_mat));
    std::vector<float> row((size_t)n_in);
    for (int64_t r = 0; r < n_out * n_mat; ++r) {
        for (auto& v : row) v = nd(rng);
        quant::quantize_row_ref(t, row.data(), m.raw.data() + (size_t)r * rb, n_in);
    }
    const int64_t ne[3] = {n_in, n_out, n_mat};
    m.t = make_tensor_view("w", t, ne, n_mat > 1 ? 3 : 2, m.raw.data());
    if (const cpu::PackedKernels* pk = cpu::packed_kernels(t)) {
        const size_t gb = pk->group_bytes(n_in);
        const size_t per = (size_t)((n_out + cpu::kPackRows - 1) / cpu::kPackRows) * gb;
        m.packed.resize(per * (size_t)n_mat);
        for (int64_t e = 0; e < n_mat; ++e)
            cpu::pack_matrix(*pk, m.raw.data() + (size_t)e * rb * (size_t)n_out, rb, n_out, m.packed.data() + e * per, n_in);
        m.prepared = std::make_unique<cpu::PackedWeights>();
        m.prepared->data = m.packed.data();
        m.prepared->group_bytes = gb;
        m.prepared->matrix_bytes = per;
        m.t.prepared = m.prepared.get();
    }
    return m;
}

std::vector<float> random_x(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x((size_t)n);
    for (auto& v : x) v = nd(rng);
    return x;
}

}  // namespace

// Each packed product is the reference dot product of the weight row with the quantized activation,
// up to float summation order.
TEST(Packed, MatchesReferenceDot) {
    ThreadPool pool(2);
    for (DType t : kPackedTypes) {
        if (!cpu::packed_kernels(t)) GTEST_SKIP() << "no packed kernels on this CPU";
        for (int64_t n_in : {256, 1024, 2304}) {
            const int64_t n_out = 37, n_tok = n_in == 1024 ? 40 : 6;  // 40: AMX tiles where the CPU has them
            PackedMatrix m = make_matrix(t, n_in, n_out, 1, 11);
            ASSERT_NE(cpu::packed_data(m.t), nullptr);
            const auto x = random_x(n_in * n_tok, 5);
            std::vector<float> y((size_t)(n_out * n_tok));
            cpu::matmul(pool, m.t, x.data(), n_tok, y.data(), false);
            const quant::RefTraits* ref = quant::ref_traits(t);
            std::vector<uint8_t> xq(row_size(ref->vec_dot_type, n_in));
            for (int64_t c = 0; c < n_tok; ++c) {
                quant::quantize_row_ref(ref->vec_dot_type, x.data() + c * n_in, xq.data(), n_in);
                for (int64_t r = 0; r < n_out; ++r) {
                    const float want = ref->vec_dot(n_in, m.t.row(r), xq.data());
                    const float got = y[(size_t)(c * n_out + r)];
                    EXPECT_NEAR(got, want, 1e-4f * (std::fabs(want) + std::sqrt((float)n_in)))
                        << dtype_name(t) << " n_in " << n_in << " row " << r << " col " << c;
                }
            }
        }
    }
}

// A column's result must not depend on the other columns of the product (the server's
// "same output alone and in a batch" guarantee).
TEST(Packed, ColumnsIndependentOfBatch) {
    ThreadPool pool(2);
    for (DType t : kPackedTypes) {
        if (!cpu::packed_kernels(t)) GTEST_SKIP() << "no packed kernels on this CPU";
        const int64_t n_in = 512, n_out = 53, n_tok = 70;
        PackedMatrix m = make_matrix(t, n_in, n_out, 1, 3);
        const auto x = random_x(n_in * n_tok, 9);
        std::vector<float> all((size_t)(n_out * n_tok)), one((size_t)n_out), some((size_t)(n_out * 3));
        cpu::matmul(pool, m.t, x.data(), n_tok, all.data(), false);
        for (int64_t c : {0, 1, 5, 31, 63, 64, 67}) {
            cpu::matmul(pool, m.t, x.data() + c * n_in, 1, one.data(), false);
            EXPECT_EQ(0, memcmp(one.data(), all.data() + c * n_out, n_out * sizeof(float))) << dtype_name(t) << " col " << c;
            cpu::matmul(pool, m.t, x.data() + c * n_in, 3, some.data(), false);
            EXPECT_EQ(0, memcmp(some.data(), all.data() + c * n_out, 3 * n_out * sizeof(float)))
                << dtype_name(t) << " cols " << c << "..+2";
        }
    }
}

// Row slices at group boundaries and expert slices keep using the packed layout and give the rows
// of the whole product; the job list gives what single products give.
TEST(Packed, SlicesAndJobs) {
    ThreadPool pool(2);
    for (DType t : kPackedTypes) {
        if (!cpu::packed_kernels(t)) GTEST_SKIP() << "no packed kernels on this CPU";
        const int64_t n_in = 256, n_out = 64, n_exp = 3, n_tok = 5;
        PackedMatrix m = make_matrix(t, n_in, n_out, n_exp, 21);
        const auto x = random_x(n_in * n_tok, 4);
        for (int64_t e = 0; e < n_exp; ++e) {
            const Tensor we = m.t.slice2(e);
            ASSERT_NE(cpu::packed_data(we), nullptr);
            std::vector<float> full((size_t)(n_out * n_tok)), part((size_t)(24 * n_tok));
            cpu::matmul(pool, we, x.data(), n_tok, full.data(), false);
            const Tensor ws = we.rows(32, 24);
            ASSERT_NE(cpu::packed_data(ws), nullptr);
            cpu::matmul(pool, ws, x.data(), n_tok, part.data(), false);
            for (int64_t c = 0; c < n_tok; ++c)
                EXPECT_EQ(0, memcmp(part.data() + c * 24, full.data() + c * n_out + 32, 24 * sizeof(float)))
                    << dtype_name(t) << " expert " << e;
            // Unaligned slices fall back to the GGUF rows.
            EXPECT_EQ(cpu::packed_data(we.rows(3, 5)), nullptr);
        }
        // Jobs: three experts, two sharing an input.
        const auto x2 = random_x(n_in * 2, 8);
        std::vector<float> y0((size_t)(n_out * n_tok)), y1((size_t)(n_out * n_tok)), y2((size_t)(n_out * 2));
        const Tensor w0 = m.t.slice2(0), w1 = m.t.slice2(1), w2 = m.t.slice2(2);
        const cpu::MatmulJob jobs[3] = {{&w0, x.data(), n_tok, y0.data()}, {&w1, x.data(), n_tok, y1.data()},
                                        {&w2, x2.data(), 2, y2.data()}};
        cpu::matmul_jobs(pool, jobs, 3, false);
        std::vector<float> r((size_t)(n_out * n_tok));
        cpu::matmul(pool, w0, x.data(), n_tok, r.data(), false);
        EXPECT_EQ(0, memcmp(r.data(), y0.data(), r.size() * sizeof(float))) << dtype_name(t);
        cpu::matmul(pool, w1, x.data(), n_tok, r.data(), false);
        EXPECT_EQ(0, memcmp(r.data(), y1.data(), r.size() * sizeof(float))) << dtype_name(t);
        cpu::matmul(pool, w2, x2.data(), 2, r.data(), false);
        EXPECT_EQ(0, memcmp(r.data(), y2.data(), (size_t)(n_out * 2) * sizeof(float))) << dtype_name(t);
    }
}

// GLU job lists: silu(gate) * up applied tile by tile inside the parallel region gives exactly
// what the products followed by silu_mul give: fused pairs (same type), pairs that cannot share
// tiles (different types), row-gathered inputs (MoE experts), one and many columns, exact mode.
TEST(Packed, GluJobsMatchProductsThenSilu) {
    ThreadPool pool(2);
    // Below 16 tokens the pairs run as separate products and silu follows the run (inline, or over
    // the pool from 16384 values: n_ff 1536 x 12 tokens); from 16 they share tiles.
    for (const int64_t n_ff : {int64_t(96), int64_t(1536)}) {
    const int64_t n_in = 512, n_all = 70;
    PackedMatrix g4 = make_matrix(DType::Q4_K, n_in, n_ff, 2, 31), u4 = make_matrix(DType::Q4_K, n_in, n_ff, 2, 32);
    PackedMatrix u8 = make_matrix(DType::Q8_0, n_in, n_ff, 1, 33), gf = make_matrix(DType::F16, n_in, n_ff, 1, 34);
    const auto x = random_x(n_in * n_all, 35);
    for (bool exact : {false, true})
        for (int64_t n_tok : {int64_t(1), int64_t(5), int64_t(12), n_all}) {
            std::vector<int32_t> rows;  // a gathered subset, out of order
            for (int32_t r = (int32_t)n_tok - 1; r >= 0; r -= 3) rows.push_back(r);
            const Tensor ga = g4.t.slice2(0), ua = u4.t.slice2(0), gb = g4.t.slice2(1), ub = u4.t.slice2(1);
            // Pairs: (Q4_K, Q4_K) on all tokens, (Q4_K, Q4_K) on gathered rows, (Q4_K, Q8_0), (F16, Q8_0).
            struct P { const Tensor *g, *u; const int32_t* rows; int64_t m; };
            const int64_t m_rows = std::min<int64_t>(n_tok, (int64_t)rows.size());
            const P pairs[4] = {{&ga, &ua, nullptr, n_tok}, {&gb, &ub, rows.data(), m_rows},
                                {&gb, &u8.t, nullptr, n_tok}, {&gf.t, &u8.t, nullptr, n_tok}};
            std::vector<std::vector<float>> y(8), ref(8);
            std::vector<cpu::MatmulJob> jobs;
            for (int i = 0; i < 4; ++i)
                for (int h = 0; h < 2; ++h) {
                    y[2 * i + h].assign((size_t)(n_ff * pairs[i].m), 0.0f);
                    cpu::MatmulJob j{h ? pairs[i].u : pairs[i].g, x.data(), pairs[i].m, y[2 * i + h].data()};
                    if (pairs[i].rows) {
                        j.x_rows = pairs[i].rows;
                        j.x_n_rows = n_tok;
                    }
                    jobs.push_back(j);
                }
            // The reference: the same job list without GLU, then silu_mul.
            std::vector<cpu::MatmulJob> rjobs = jobs;
            for (int k = 0; k < 8; ++k) {
                ref[k].assign(y[k].size(), 0.0f);
                rjobs[k].y = ref[k].data();
            }
            cpu::matmul_jobs(pool, rjobs.data(), rjobs.size(), exact);
            for (int i = 0; i < 4; ++i) cpu::silu_mul(ref[2 * i].data(), ref[2 * i + 1].data(), (int64_t)ref[2 * i].size());
            cpu::matmul_glu_jobs(pool, jobs.data(), jobs.size(), exact);
            for (int i = 0; i < 4; ++i)
                EXPECT_EQ(0, memcmp(ref[2 * i].data(), y[2 * i].data(), y[2 * i].size() * sizeof(float)))
                    << "pair " << i << " n_ff " << n_ff << " n_tok " << n_tok << (exact ? " exact" : "");
        }
    }
}

// Rough single-thread speed of the packed kernels (run with --gtest_also_run_disabled_tests):
// multiply-adds per second with the weights in cache (compute) and streamed (n_out large).
// The Q8_0 kernels' activation blocks hold exactly the Q8_0 quantization of the CPU kernels (the
// quantized bytes, the F16-rounded scale as a float, 128 x the sum of the bytes) and zero padding,
// and so the reference's: blocks of zeros, halves (round half away from zero), a scale that
// overflows F16, ordinary values. Blocks of subnormals (1 / d overflows; the reference then
// converts an infinity to int, which C++ leaves undefined) are checked against the CPU kernels only.
TEST(Packed, Q8_0ActivationsMatchReference) {
    const cpu::PackedKernels* pk = cpu::packed_kernels(DType::Q8_0);
    if (!pk) GTEST_SKIP() << "no packed Q8_0 kernels on this CPU";
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int64_t n : {32, 64, 2048, 5632}) {
        std::vector<float> x((size_t)n);
        for (int64_t i = 0; i < n; ++i) {
            const int64_t blk = i / 32;
            switch (blk % 6) {
                case 0: x[(size_t)i] = nd(rng) * 3.0f; break;
                case 1: x[(size_t)i] = 0.0f; break;
                case 2: x[(size_t)i] = (i % 32 == 0) ? 127.0f : (float)((int)(i % 32) - 16) + 0.5f; break;  // id = 1: exact halves
                case 3: x[(size_t)i] = nd(rng) * 1e30f; break;  // d = amax / 127 beyond F16's range
                case 4: x[(size_t)i] = nd(rng) * 1e-40f; break;  // subnormal inputs
                default: x[(size_t)i] = nd(rng) * 1e-3f; break;
            }
        }
        std::vector<block_q8_0> ref((size_t)(n / 32)), kq((size_t)(n / 32));
        quant::quantize_row_ref(DType::Q8_0, x.data(), ref.data(), n);
        cpu::cpu_kernels(DType::Q8_0)->from_float(x.data(), kq.data(), n);
        for (size_t b = 0; b < ref.size(); ++b)
            if (b % 6 != 4) {
                ASSERT_EQ(0, memcmp(&ref[b], &kq[b], sizeof(block_q8_0))) << "n = " << n << ", block " << b;
            }
        ref = kq;
        std::vector<cpu::ActQ80> want((size_t)(n / 32)), got((size_t)(n / 32) + 1);
        for (size_t b = 0; b < ref.size(); ++b) {
            cpu::ActQ80& a = want[b];
            memset(&a, 0, sizeof a);
            memcpy(a.qs, ref[b].qs, 32);
            a.d = fp16_to_fp32(ref[b].d);
            int sum = 0;
            for (int k = 0; k < 32; ++k) sum += ref[b].qs[k];
            a.s128 = 128 * sum;
        }
        memset(got.data(), 0xA5, got.size() * sizeof(cpu::ActQ80));
        ASSERT_EQ(pk->act_bytes(n), want.size() * sizeof(cpu::ActQ80));
        pk->quantize_act(x.data(), got.data(), n);
        for (size_t b = 0; b < want.size(); ++b)
            ASSERT_EQ(0, memcmp(&want[b], &got[b], sizeof(cpu::ActQ80))) << "n = " << n << ", block " << b;
        const uint8_t* past = (const uint8_t*)&got[want.size()];
        for (size_t k = 0; k < sizeof(cpu::ActQ80); ++k) ASSERT_EQ(past[k], 0xA5) << "wrote past block " << want.size();
    }
}

TEST(Packed, DISABLED_Bench) {
    ThreadPool pool(1);
    for (DType t : kPackedTypes) {
        if (!cpu::packed_kernels(t)) GTEST_SKIP();
        for (int64_t n_tok : {1, 4, 64, 512}) {
            const int64_t n_in = 2048, n_out = getenv("PB_NOUT") ? atoll(getenv("PB_NOUT")) : (n_tok >= 64 ? 2048 : 512);
            PackedMatrix m = make_matrix(t, n_in, n_out, 1, 1);
            const auto x = random_x(n_in * n_tok, 2);
            std::vector<float> y((size_t)(n_out * n_tok));
            cpu::matmul(pool, m.t, x.data(), n_tok, y.data(), false);
            const auto t0 = std::chrono::steady_clock::now();
            int reps = 0;
            double secs = 0;
            do {
                cpu::matmul(pool, m.t, x.data(), n_tok, y.data(), false);
                ++reps;
                secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            } while (secs < 0.5);
            const double macs = (double)n_in * n_out * n_tok * reps / secs;
            const double bytes = (double)m.packed.size() * reps / secs;
            printf("%-5s n_tok %3lld: %7.1f GMAC/s  %6.1f GB/s of weights\n", dtype_name(t), (long long)n_tok, macs / 1e9,
                   bytes / 1e9);
        }
    }
}

// Anonymous memory, optionally with transparent huge pages (as the model's packed weights).
struct HugeBuffer {
    uint8_t* p;
    size_t n;
    HugeBuffer(size_t bytes, bool huge) : n(bytes) {
        p = (uint8_t*)mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (huge) madvise(p, n, MADV_HUGEPAGE);
    }
    ~HugeBuffer() { munmap(p, n); }
    size_t size() const { return n; }
    uint8_t* data() { return p; }
    uint8_t& operator[](size_t i) { return p[i]; }
};

// Streaming speed of the one-column (decode) product over packed weights much larger than the
// caches, as GB/s of weights, with 1 and 2 threads (run with --gtest_also_run_disabled_tests;
// PB_MB sets the weight size in MB, default 1024).
TEST(Packed, DISABLED_Stream) {
    const size_t mb = getenv("PB_MB") ? (size_t)atoll(getenv("PB_MB")) : 1024;
    for (DType t : kPackedTypes) {
        const cpu::PackedKernels* pk = cpu::packed_kernels(t);
        if (!pk) GTEST_SKIP();
        const int64_t n_in = 2048;
        const size_t gb = pk->group_bytes(n_in);
        const int64_t n_out = (int64_t)((mb << 20) / gb) * cpu::kPackRows;
        HugeBuffer buf((size_t)(n_out / cpu::kPackRows) * gb, getenv("PB_NOHUGE") == nullptr);
        {
            // Real packed groups (one quantized 16-row group, repeated): normal scales, like a model's.
            PackedMatrix one = make_matrix(t, n_in, cpu::kPackRows, 1, 9);
            for (size_t off = 0; off < buf.size(); off += gb) memcpy(buf.data() + off, one.packed.data(), gb);
        }
        const int64_t ne[2] = {n_in, n_out};
        Tensor w = make_tensor_view("w", t, ne, 2, buf.data());
        cpu::PackedWeights pw;
        pw.data = buf.data();
        pw.group_bytes = gb;
        pw.matrix_bytes = buf.size();
        w.prepared = &pw;
        const auto x = random_x(n_in, 1);
        std::vector<float> y((size_t)n_out);
        for (int nt : {1, 2}) {
            ThreadPool pool(nt);
            cpu::matmul(pool, w, x.data(), 1, y.data(), false);
            double best = 0;
            for (int rep = 0; rep < 4; ++rep) {
                const auto t0 = std::chrono::steady_clock::now();
                cpu::matmul(pool, w, x.data(), 1, y.data(), false);
                const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                best = std::max(best, (double)buf.size() / s / 1e9);
            }
            printf("%-5s %d thread(s): %6.1f GB/s\n", dtype_name(t), nt, best);
            if (nt == 1) {
                // The kernel alone over every group, no driver.
                const size_t ld_x = pk->act_bytes(n_in);
                HugeBuffer xq(ld_x, false);
                pk->quantize_act(x.data(), xq.data(), n_in);
                double bk = 0;
                for (int rep = 0; rep < 4; ++rep) {
                    const auto t0 = std::chrono::steady_clock::now();
                    for (int64_t g = 0; g < n_out / cpu::kPackRows; ++g)
                        pk->gemm(n_in, y.data() + g * cpu::kPackRows, n_out, buf.data() + (size_t)g * gb, 16, xq.data(), ld_x, 1);
                    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                    bk = std::max(bk, (double)buf.size() / s / 1e9);
                }
                printf("%-5s kernel only: %6.1f GB/s\n", dtype_name(t), bk);
            }
        }
    }
}

// Kernel-only speed (activations quantized beforehand), one thread: VNNI vs AMX on 512 columns.
TEST(Packed, DISABLED_KernelOnly) {
    for (DType t : kPackedTypes) {
        const cpu::PackedKernels* pk = cpu::packed_kernels(t);
        if (!pk) GTEST_SKIP();
        const int64_t n_in = getenv("PB_NIN") ? atoll(getenv("PB_NIN")) : 2048, n_out = 256, n_tok = 512;
        PackedMatrix m = make_matrix(t, n_in, n_out, 1, 1);
        const auto x = random_x(n_in * n_tok, 2);
        const size_t ld_x = pk->act_bytes(n_in);
        HugeBuffer xq(ld_x * n_tok, true);
        for (int64_t c = 0; c < n_tok; ++c) pk->quantize_act(x.data() + c * n_in, xq.data() + c * ld_x, n_in);
        std::vector<float> y((size_t)(n_out * n_tok));
        for (int amx = 0; amx < 2; ++amx) {
            auto fn = amx ? pk->gemm_amx : pk->gemm;
            if (!fn) continue;
            double best = 1e9;
            const int reps = getenv("PB_REPS") ? atoi(getenv("PB_REPS")) : 5;
            for (int rep = 0; rep < reps; ++rep) {
                const auto t0 = std::chrono::steady_clock::now();
                for (int64_t g = 0; g < n_out / cpu::kPackRows; ++g)
                    fn(n_in, y.data() + g * cpu::kPackRows, n_out, cpu::packed_data(m.t) + g * cpu::packed_group_bytes(m.t), 16,
                       xq.data(), ld_x, (int)n_tok);
                best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            printf("%-5s %s: %7.1f GMAC/s\n", dtype_name(t), amx ? "amx " : "vnni", (double)n_in * n_out * n_tok / best / 1e9);
        }
    }
}
