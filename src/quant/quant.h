// Scalar reference for every tensor type: the specification every fast kernel is checked against.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "quant/blocks.h"

namespace yiti::quant {

// Reference traits of one type. Functions take n = number of elements (multiple of block size).
struct RefTraits {
    DType vec_dot_type;                                     // activation format its dot product consumes
    void (*to_float)(const void* src, float* dst, int64_t n);    // dequantize (never null for supported types)
    void (*from_float)(const float* src, void* dst, int64_t n);  // quantize (round to nearest with the
                                                                 // format's scale choice); null if none
                                                                 // (the i-quants are read-only)
    // dot(weight row in this type, activation row in vec_dot_type), accumulated in float/int as the
    // format defines; the reference result fast kernels must match.
    float (*vec_dot)(int64_t n, const void* w, const void* x);
};

// nullptr when the type is unknown to the reference (unsupported).
const RefTraits* ref_traits(DType t);

// Conveniences over ref_traits; they abort on unsupported types (check dtype_info().supported first).
void dequantize_row_ref(DType t, const void* src, float* dst, int64_t n);
void quantize_row_ref(DType t, const float* src, void* dst, int64_t n);
DType vec_dot_type(DType t);

// Family tables (each returns nullptr for types it does not own).
const RefTraits* ref_traits_float(DType t);    // F32, F16, BF16
const RefTraits* ref_traits_legacy(DType t);   // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, IQ4_NL
const RefTraits* ref_traits_kquants(DType t);  // Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_XS
const RefTraits* ref_traits_iquants(DType t);  // IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S (no from_float)

}  // namespace yiti::quant
