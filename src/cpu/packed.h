// Weights repacked at load into interleaved row groups, and the kernels that stream them.
//
// A packed matrix stores its rows in groups of kPackRows = 16: for each block of the row (256
// elements for k-quants, 32 for Q8_0) the group holds the 16 rows' scales and then their quants
// arranged so that one 64-byte load gives 4 consecutive quants of each of the 16 rows. An AVX-512
// VNNI dot product (vpdpbusd) then accumulates 16 rows at once, one int32 lane per row, against 4
// activation bytes broadcast from memory: no horizontal sums, and every weight byte is read once for
// up to kMaxCols activation columns.
//
// Results are bit-identical whatever the number of columns in a call (each lane does the same
// operations for its (row, column) pair), so a token's result never depends on its batch.
// Per block the integer sums are exact; the float accumulation is, per (row, column),
//     acc = fma(d * dx, isum, acc)  [k-quants with mins: then acc = fma(-(dmin * dx), imin, acc)]
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "core/tensor.h"

namespace yiti::cpu {

constexpr int kPackRows = 16;

// A weight the CPU backend repacked at load: its matrices back to back, each as ceil(rows / 16)
// groups of group_bytes.
struct PackedWeights final : PreparedWeights {
    const uint8_t* data = nullptr;
    size_t group_bytes = 0;
    size_t matrix_bytes = 0;
};

// The packed groups of a weight view, from the group holding its first row: nullptr when the
// weight has no packed form or the view starts inside a group (it then runs from its GGUF bytes).
inline const uint8_t* packed_data(const Tensor& w) {
    const PreparedWeights* p = w.prepared;
    if (!p || p->device.kind != DeviceKind::CPU || w.view_row0 % kPackRows != 0) return nullptr;
    const PackedWeights* pw = static_cast<const PackedWeights*>(p);
    return pw->data + (size_t)w.view_mat * pw->matrix_bytes + (size_t)(w.view_row0 / kPackRows) * pw->group_bytes;
}
// Bytes of one group of a weight packed_data() is not null for.
inline size_t packed_group_bytes(const Tensor& w) { return static_cast<const PackedWeights*>(w.prepared)->group_bytes; }

struct PackedKernels {
    DType type;  // the weight type this packs
    // Bytes of one packed group of kPackRows rows of n_in elements.
    size_t (*group_bytes)(int64_t n_in);
    // Packs nr (<= kPackRows) rows (ld_src bytes apart) into one group; missing rows are zero.
    void (*pack_group)(const void* src, size_t ld_src, int nr, void* dst, int64_t n_in);
    // Activation rows in the kernel's format.
    size_t (*act_bytes)(int64_t n_in);
    void (*quantize_act)(const float* x, void* dst, int64_t n_in);
    // For c < nc (<= any number), r < nr (<= kPackRows): s[c * ld_s + r] = row r of the group . column c.
    void (*gemm)(int64_t n_in, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc);
    // The same product with AMX-INT8 tiles (null when the CPU or OS has no AMX): bit-identical
    // results, worth it from about 16 columns up (prompt processing).
    void (*gemm_amx)(int64_t n_in, float* s, size_t ld_s, const void* group, int nr, const void* x, size_t ld_x, int nc);
};

// The packed kernels for type t on this CPU, or nullptr (the type stays in its GGUF layout).
// YITI_NO_REPACK=1 in the environment turns packing off.
const PackedKernels* packed_kernels(DType t);

// Packs a whole [n_rows][n_in] matrix (rows ld_src bytes apart) into dst, which must hold
// ceil(n_rows / kPackRows) * group_bytes(n_in) bytes.
void pack_matrix(const PackedKernels& pk, const void* src, size_t ld_src, int64_t n_rows, void* dst, int64_t n_in);

// VNNI implementations (packed_avx512vnni.cpp): nullptr for types without one.
const PackedKernels* packed_kernels_avx512vnni(DType t);

}  // namespace yiti::cpu
