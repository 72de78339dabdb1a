// The integer path of the Vulkan matrix-vector product (fast mode, not --exact): as the CPU's fast
// mode does (cpu::matmul with exact = false quantizes activations to Q8_0 / Q8_1 / Q8_K), the
// activation columns of a product with a quantized weight are quantized once to 8 bits, and the
// kernel multiplies the weight's integers with the activation's int8 values in per-block integer
// dot products, scaled afterwards. The result differs from mul_mat's (F32 activations) by the
// activations' 8-bit rounding: NMSE ~1.4e-5 for activations spread evenly over their blocks' range
// (the derivation is in tests/unit/test_vulkan_int8.cpp).
//
// The dot products are 4-way int8 dot products (OpSDot, dotPacked4x8EXT) where the device has them
// accelerated (DeviceDesc::int8_dot, enabled by the context: Context::int8_dot()), and the same
// arithmetic in int32 multiply-adds of the unpacked bytes elsewhere (lavapipe). The two kernels
// differ only in that function and form the same integers, then the same float operations on them
// (on lavapipe, which has the feature without acceleration, the tests check both, bit for bit).
#pragma once
#include <cstdint>

#include "core/dtype.h"
#include "vulkan/ops.h"

namespace yiti::vk {

// Weight types with an integer product: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K,
// Q5_K, Q6_K, IQ4_XS (every quantized type of mul_mat). Float weights (F32, F16, BF16) keep mul_mat.
bool mul_mat_q8_supported(DType t);

// The activation format (quantize_q8's output). Each column of n_in values (n_in a multiple of 32;
// nb = n_in / 32 blocks) takes 40 nb bytes, the columns one after the other; a column is, in 32-bit
// words from its start:
//   words [0, 8 nb)          the quants q: word 8b + i holds elements 32b + 4i .. 32b + 4i + 3 of the
//                            column, element 32b + 4i + k in byte k (int8, in [-127, 127])
//   words 8 nb + 2b, +1      block b's scale d (an F32: amax / 127, 0 for a block of zeros) and
//                            the sums of its quants 0 .. 15 (low 16 bits) and 16 .. 31 (high 16
//                            bits), each an int16
// The block's values are q * d with q = roundEven(x / d): the sums give weight types with a min
// (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) their min term in one product per half block, as Q8_1's sum does.
constexpr int64_t k_q8_block = 32;         // values per block
constexpr uint64_t k_q8_block_bytes = 40;  // bytes per block: 32 quants, the scale, the two sums

// Bytes of n_cols quantized columns of n_in values (n_in a multiple of 32).
uint64_t quantized_bytes(int64_t n_in, int64_t n_cols);

// Quantizes x ([n_cols][n_in] F32, contiguous) into xq (quantized_bytes(n_in, n_cols) bytes, the
// format above). n_in must be a multiple of 32. Dispatches per group of columns that fits a binding;
// throws Error when one column does not fit one (maxStorageBufferRange).
void quantize_q8(Sequence& seq, const BufferView& x, int64_t n_in, int64_t n_cols, const BufferView& xq);

enum class Int8Dot {
    Auto,      // Packed where the device has accelerated int8 dot products, else Unpacked
    Packed,    // OpSDot (the device must have the feature: Context::int8_dot(); Error otherwise)
    Unpacked,  // int32 multiply-adds of the unpacked bytes
};
struct MulMatQ8Options {
    Int8Dot dot = Int8Dot::Auto;
};
// The kernel Auto picks on ctx: true for the packed dot products.
bool q8_uses_packed_dot(const Context& ctx);

// y = W x for n_cols columns with x quantized by quantize_q8 into xq (n_in = w.n_in, a multiple of
// 32; of 256 for the K-quants and IQ4_XS, as their rows are), W of a type mul_mat_q8_supported
// takes. y is [n_cols][w.n_out] F32, contiguous, as mul_mat's. The vector kernel: up to 8 columns
// per dispatch, so any n_cols is taken in groups of 8 (one weight read per group: for many columns
// mul_mat's tiled kernel is the faster choice, the caller's to make). Dispatches per piece of W and
// per group of columns that fits the bindings; throws Error when one column does not fit one.
void mul_mat_q8(Sequence& seq, const Matrix& w, const BufferView& xq, int64_t n_cols, const BufferView& y,
                const MulMatQ8Options& opt = {});

}  // namespace yiti::vk
