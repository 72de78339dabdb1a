#version 450
// Writes n_tok rows of dim F32 values into a layer's paged K (or V) storage: row t goes to cache
// slot slots[t] (block * block_size + position within the block: the CPU cache's layout of one
// layer), i.e. to dst[slots[t] * dim ..]. F16 storage: rounded to nearest even as fp32_to_fp16
// (core/fp16.h) rounds, in integer arithmetic (OpFConvert's rounding is the device's choice);
// NaN becomes sign | 0x7E00, as there.
//   src: row t at src_off + t * dim; slots: int32 at slots_off; dst: in elements, from dst_off.
//
// variant: kv_store_f32 -DKV_F32
// variant: kv_store_f16 -DKV_F16
#extension GL_EXT_shader_16bit_storage : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

layout(binding = 0) readonly buffer SBuf { float src[]; };
layout(binding = 1) readonly buffer SlotBuf { int slots[]; };
#if defined(KV_F16)
layout(binding = 2) writeonly buffer DBuf { uint16_t dst[]; };
#else
layout(binding = 2) writeonly buffer DBuf { float dst[]; };
#endif

layout(push_constant) uniform Push {
    uint dim;
    uint n_tok;
    uint src_off;
    uint slots_off;
    uint dst_off;
} p;

#if defined(KV_F16)
uint to_half(float f) {
    const uint w = floatBitsToUint(f);
    const uint sign = (w >> 16) & 0x8000u, a = w & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7E00u;   // NaN
    if (a >= 0x477FF000u) return sign | 0x7C00u;  // rounds to infinity (65520 and above)
    uint mant, s;
    if (a >= 0x38800000u) {  // a normal half: drop 13 bits of the rebiased value
        mant = a - 0x38000000u;
        s = 13u;
    } else {  // subnormal (or zero): units of 2^-24
        const uint e = a >> 23;
        if (e < 102u) return sign;
        mant = (a & 0x7FFFFFu) | 0x800000u;
        s = 126u - e;
    }
    const uint h = mant >> s, rem = mant & ((1u << s) - 1u), halfway = 1u << (s - 1u);
    return sign | (h + ((rem > halfway || (rem == halfway && (h & 1u) != 0u)) ? 1u : 0u));
}
#endif

void main() {
    const uint i = group_linear() * WG + gl_LocalInvocationID.x;
    if (i >= p.n_tok * p.dim) return;
    const uint t = i / p.dim, c = i % p.dim;
    const uint d = p.dst_off + uint(slots[p.slots_off + t]) * p.dim + c;
    const float v = src[p.src_off + i];
#if defined(KV_F16)
    dst[d] = uint16_t(to_half(v));
#else
    dst[d] = v;
#endif
}
