// A request's results must not depend on what else is in the batch: every kernel's multi-column
// product must give, bit for bit, what the single-column dot product gives.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/threadpool.h"
#include "cpu/kernels.h"
#include "cpu/ops.h"
#include "quant/quant.h"

using namespace yiti;

namespace {
const DType k_types[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1,
                         DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K,
                         DType::Q6_K, DType::IQ4_NL, DType::IQ4_XS};
}

TEST(BatchInvariance, MatmulColumnsIndependentOfBatch) {
    const int64_t n_in = 512, n_out = 37;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> wf((size_t)(n_in * n_out)), x((size_t)(n_in * 70));
    for (auto& v : wf) v = nd(rng);
    for (auto& v : x) v = nd(rng);
    ThreadPool pool(2);
    for (DType t : k_types) {
        const size_t rb = row_size(t, n_in);
        std::vector<uint8_t> wq(rb * n_out);
        for (int64_t r = 0; r < n_out; ++r) quant::quantize_row_ref(t, wf.data() + r * n_in, wq.data() + r * rb, n_in);
        const int64_t ne[2] = {n_in, n_out};
        Tensor w = make_tensor_view("w", t, ne, 2, wq.data());
        std::vector<float> all((size_t)(70 * n_out)), one((size_t)n_out);
        cpu::matmul(pool, w, x.data(), 70, all.data(), false);
        for (int64_t c : {0, 1, 5, 31, 63, 64, 69}) {
            cpu::matmul(pool, w, x.data() + c * n_in, 1, one.data(), false);
            EXPECT_EQ(0, memcmp(one.data(), all.data() + c * n_out, n_out * sizeof(float)))
                << dtype_name(t) << " column " << c;
        }
    }
}
