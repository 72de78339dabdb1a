// The Vulkan ops DeepSeek's absorbed MLA attention needs beside ops.h: strided copies (gathering the
// heads' parts of the queries, scattering the heads' values back) and a batched product over the
// per-head row blocks of one weight (the absorbed query through the key half of wkv_b, the latent
// output through its value half). Activations are F32; every size and stride is in floats.
#pragma once
#include <cstdint>

#include "vulkan/context.h"
#include "vulkan/ops.h"
#include "vulkan/sequence.h"

namespace yiti::vk {

// For i0 < n0, i1 < n1 and e < len:
//   dst[i0 * dst_s0 + i1 * dst_s1 + e] = src[i0 * src_s0 + i1 * src_s1 + e]
// (strides >= 0, in floats from the views' starts; views 4-byte aligned). One dispatch. src and dst
// may be views of the same buffer only when their spans (first to last element copied, i.e.
// (n0 - 1) * s0 + (n1 - 1) * s1 + len floats) do not overlap (asserted); destinations written twice
// get either value. Throws Error when the source's or the destination's span does not fit one
// binding (maxStorageBufferRange), or n0 * n1 * len exceeds 2^32 - 1; nothing is recorded then.
void copy_strided(Sequence& seq, const BufferView& src, const BufferView& dst, int64_t n0, int64_t n1,
                  int64_t len, int64_t src_s0, int64_t src_s1, int64_t dst_s0, int64_t dst_s1);

// Products with n_mats row blocks of w, each its own matrix: for m < n_mats, c < n_cols and
// r < rows_per_mat,
//   y[m][c][r] = sum_i W[row0 + m * mat_row_stride + r][i] * x[m][c][i]
// with x: [n_mats][n_cols][w.n_in] and y: [n_mats][n_cols][rows_per_mat], both F32 and contiguous
// (y must not overlap x). Any weight type mul_mat takes, the same arithmetic as mul_mat's vector
// kernel. The blocks must lie within w (row0 + (n_mats - 1) * mat_row_stride + rows_per_mat <=
// w.n_out); they may overlap or share rows (stride 0).
//
// Uses (DeepSeek, H heads, latent R, n_nope, Dv): the absorbed query, W = the per-head [R][n_nope]
// blocks stacked (row0 0, rows_per_mat R, stride R); the values, W = wkv_b (row0 n_nope,
// rows_per_mat Dv, stride n_nope + Dv).
//
// Dispatches: one per piece of w holding rows of some block, for up to 8 columns (all mats in one
// grid), as long as x's and y's parts fit one binding (else per group of mats that does); more
// columns go in groups of 8 (one dispatch per group and piece). A block split across pieces
// (upload_matrix splits at the binding limit) is computed by the dispatches of both. Throws Error
// when one column of one block (n_in or rows_per_mat floats) does not fit a binding.
void mul_mat_batched(Sequence& seq, const Matrix& w, int64_t row0, int64_t rows_per_mat,
                     int64_t mat_row_stride, int64_t n_mats, const BufferView& x, int64_t n_cols,
                     const BufferView& y);

}  // namespace yiti::vk
