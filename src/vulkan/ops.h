// The Vulkan kernels' host side: each op records its dispatches into a Sequence. Activations are
// F32. Every op splits its work so that no binding exceeds the device's maxStorageBufferRange.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "vulkan/context.h"
#include "vulkan/sequence.h"

namespace yiti::vk {

// A 2-D weight [n_out rows][n_in] in device memory (GGUF layout), stored as row ranges ("pieces"),
// each in its own buffer no larger than one binding (maxStorageBufferRange) or one block.
struct Matrix {
    struct Piece {
        Buffer buf;  // [n_rows][row_bytes]
        int64_t row0 = 0;
        int64_t n_rows = 0;
    };
    DType type = DType::F32;
    int64_t n_in = 0;   // elements per row (ne[0])
    int64_t n_out = 0;  // rows (ne[1])
    size_t row_bytes = 0;
    std::vector<Piece> pieces;
};

// Weight types the products take: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K .. Q6_K,
// IQ4_XS (every weight type of the CPU engine).
bool mul_mat_supported(DType t);

// Copies a 2-D weight tensor (host memory, any row stride) to the device. Throws Error for an
// unsupported type or a row larger than one binding.
Matrix upload_matrix(Context& ctx, const Tensor& w);

enum class MulMatPath {
    Auto,    // the vector kernel for up to 8 columns, the tiled kernel beyond
    Vector,  // mul_mv: 1 .. 8 columns per dispatch
    Tiled,   // mul_mm: 64 x 64 tiles
};
struct MulMatOptions {
    MulMatPath path = MulMatPath::Auto;
};

// y = W x for n_cols activation columns: x is [n_cols][n_in] F32 and y [n_cols][n_out] F32, both
// contiguous. Dispatches per piece of W and per group of columns that fits a binding.
void mul_mat(Sequence& seq, const Matrix& w, const BufferView& x, int64_t n_cols, const BufferView& y,
             const MulMatOptions& opt = {});

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight for n_rows contiguous rows of n floats.
// out may be x.
void rms_norm(Sequence& seq, const BufferView& x, const BufferView& weight, int64_t n, int64_t n_rows,
              float eps, const BufferView& out);

// out[i] = silu(gate[i]) * up[i] for n floats (SwiGLU). out may be gate.
void silu_mul(Sequence& seq, const BufferView& gate, const BufferView& up, int64_t n, const BufferView& out);

// out[i] = a[i] + b[i] for n floats; with b_n > 0, b holds one row of b_n floats added to every row
// of a (n a multiple of b_n: a bias). out may be a.
void add(Sequence& seq, const BufferView& a, const BufferView& b, int64_t n, const BufferView& out,
         int64_t b_n = 0);

}  // namespace yiti::vk
