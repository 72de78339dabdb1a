// The matrix product driver: quantizes activations once, then hands tiles of weight rows ×
// activation columns to the type's kernels on the thread pool.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "cpu/kernels.h"
#include "cpu/ops.h"

namespace yiti::cpu {

namespace {

constexpr int64_t k_col_tile = 64;  // activation columns per tile (their quantized rows stay in cache)

// Rows per tile: enough tiles for every thread to have several, at least a few rows each.
int64_t row_tile(int64_t n_rows, int64_t n_col_tiles, int n_threads) {
    const int64_t want_tiles = 8LL * n_threads;
    int64_t rt = (n_rows * n_col_tiles + want_tiles - 1) / want_tiles;
    rt = std::clamp<int64_t>(rt, 4, 64);
    return (rt + 3) / 4 * 4;
}

}  // namespace

void matmul(ThreadPool& pool, const Tensor& w, const float* x, int64_t n_tokens, float* y, bool exact) {
    const int64_t n_in = w.ne[0], n_out = w.ne[1];
    YITI_ASSERT(w.ne[2] == 1 && w.ne[3] == 1);
    const CpuKernels* k = cpu_kernels(w.type);
    if (!k) throw Error(strprintf("tensor '%s': type %s has no CPU kernels", w.name.c_str(), dtype_name(w.type)));
    const size_t ld_w = w.row_bytes();
    const int64_t n_col_tiles = (n_tokens + k_col_tile - 1) / k_col_tile;
    const int64_t rt = row_tile(n_out, n_col_tiles, pool.size());
    const int64_t n_row_tiles = (n_out + rt - 1) / rt;
    const int64_t n_tiles = n_row_tiles * n_col_tiles;

    if (exact) {
        // Dequantized weights × F32 activations.
        pool.parallel_for(n_tiles, 1, [&](int64_t b, int64_t e) {
            std::vector<float> wrow((size_t)n_in);
            for (int64_t tile = b; tile < e; ++tile) {
                const int64_t r0 = (tile / n_col_tiles) * rt, c0 = (tile % n_col_tiles) * k_col_tile;
                const int64_t r1 = std::min(n_out, r0 + rt), c1 = std::min(n_tokens, c0 + k_col_tile);
                for (int64_t r = r0; r < r1; ++r) {
                    k->to_float(w.row(r), wrow.data(), n_in);
                    for (int64_t c = c0; c < c1; ++c) y[c * n_out + r] = dot_f32(wrow.data(), x + c * n_in, n_in);
                }
            }
        });
        return;
    }

    const DType vdt = k->vec_dot_type;
    const void* xq = x;
    size_t ld_x = (size_t)n_in * sizeof(float);
    std::vector<uint8_t> xq_buf;
    if (vdt != DType::F32) {
        YITI_ASSERT(k->from_float);
        ld_x = row_size(vdt, n_in);
        xq_buf.resize(ld_x * (size_t)n_tokens);
        pool.parallel_for(n_tokens, 1, [&](int64_t b, int64_t e) {
            for (int64_t t = b; t < e; ++t) k->from_float(x + t * n_in, xq_buf.data() + t * ld_x, n_in);
        });
        xq = xq_buf.data();
    }
    const uint8_t* xb = (const uint8_t*)xq;
    const uint8_t* wb = (const uint8_t*)w.data;
    pool.parallel_for(n_tiles, 1, [&](int64_t b, int64_t e) {
        for (int64_t tile = b; tile < e; ++tile) {
            const int64_t r0 = (tile / n_col_tiles) * rt, c0 = (tile % n_col_tiles) * k_col_tile;
            const int64_t r1 = std::min(n_out, r0 + rt), c1 = std::min(n_tokens, c0 + k_col_tile);
            if (k->gemm) {
                k->gemm(n_in, y + c0 * n_out + r0, (size_t)n_out, wb + r0 * ld_w, ld_w, (int)(r1 - r0),
                        xb + c0 * ld_x, ld_x, (int)(c1 - c0));
            } else {
                for (int64_t c = c0; c < c1; ++c)
                    for (int64_t r = r0; r < r1; ++r) k->vec_dot(n_in, y + c * n_out + r, wb + r * ld_w, xb + c * ld_x);
            }
        }
    });
}

}  // namespace yiti::cpu
