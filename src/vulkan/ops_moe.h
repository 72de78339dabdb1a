// The Vulkan kernels of Mixture-of-Experts layers: expert selection from router logits (route),
// the products of each token's chosen experts (mul_mat_id) and their weighted sum (moe_combine).
// Everything stays on the device: the expert ids route writes are read by mul_mat_id's shaders,
// never by the host. Activations are F32; every op splits its work so that no binding exceeds the
// device's maxStorageBufferRange.
//
// A routed-expert FFN (model::moe_ffn) on the device:
//   route(logits) -> ids, weights
//   mul_mat_id(gate_exps, x shared) -> g; mul_mat_id(up_exps, x shared) -> u    [n_tok][k][n_ff]
//   silu_mul(g, u) -> g
//   mul_mat_id(down_exps, g per slot) -> y                                      [n_tok][k][n_embd]
//   moe_combine(y, weights) -> out                                              [n_tok][n_embd]
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "vulkan/context.h"
#include "vulkan/sequence.h"

namespace yiti::vk {

// A stacked expert weight [n_in, n_out, n_expert] (GGUF layout: ne[0] = n_in, ne[1] = n_out,
// ne[2] = n_expert; expert e is the 2-D weight [n_out rows][n_in]) in device memory, stored as
// ranges of whole experts ("pieces"), each in its own buffer no larger than one binding
// (maxStorageBufferRange) or one block (max_alloc).
struct Experts {
    struct Piece {
        Buffer buf;  // [n_experts][n_out][row_bytes]
        int e0 = 0;  // its first expert
        int n_experts = 0;
    };
    DType type = DType::F32;
    int64_t n_in = 0;   // elements per row (ne[0])
    int64_t n_out = 0;  // rows per expert (ne[1])
    int n_expert = 0;   // ne[2]
    size_t row_bytes = 0;
    size_t expert_bytes = 0;  // n_out * row_bytes
    std::vector<Piece> pieces;
};

// Copies a 3-D expert tensor (host memory, any row and expert strides) to the device. Any type
// mul_mat_supported() accepts. Throws Error for an unsupported type, rows that are not whole
// blocks, or one expert larger than one binding.
Experts upload_experts(Context& ctx, const Tensor& w);

// Expert selection, model::route_experts' arithmetic (the largest n_expert is 1024, k at most 64):
//  * scores: softmax over the token's logits (as cpu::softmax: exp(l - max), times 1 / sum; the
//    sum in F32 here) or sigmoid 1 / (1 + exp(-l));
//  * selection score = score + bias[e] (bias: DeepSeek-V3's exp_probs_b, or none);
//  * group-limited choice when n_groups > 1 && 0 < n_groups_used < n_groups && n_expert %
//    n_groups == 0: a group's score is the sum of its two best selection scores (its best when it
//    has one expert); the n_groups_used best groups are kept (ties to the lower group index), the
//    other groups' experts cannot be chosen;
//  * the k experts of highest selection score, in descending order (ties to the lower index);
//  * weights: the chosen unbiased scores, divided by their sum (in slot order) when renorm, times
//    scale.
// exp may differ from the host's by a few ulp (Vulkan's precision), so experts whose selection
// scores are that close may come out in the other order than on the host.
struct RouteParams {
    bool sigmoid = false;  // else softmax
    int k = 0;
    bool renorm = false;
    float scale = 1.0f;
    int n_groups = 0;
    int n_groups_used = 0;
};

// logits: [n_tok][n_expert] F32; bias: [n_expert] F32 or null; ids: [n_tok][k] int32 and
// weights: [n_tok][k] F32, written. One workgroup per token.
void route(Sequence& seq, const RouteParams& rp, const BufferView& logits, const BufferView* bias,
           int64_t n_tok, int n_expert, const BufferView& ids, const BufferView& weights);

// The chosen experts' products: for each token t < n_tok and slot j < k,
//   y[t][j][:] = W[ids[t][j]] · x_row,  x_row = x[t] (x: [n_tok][n_in]) when !x_per_slot,
//                                        x[t][j] (x: [n_tok][k][n_in]) when x_per_slot;
// y: [n_tok][k][n_out] F32. The ids are device data (route's output; each in [0, n_expert), not
// checked). The arithmetic is mul_mat's vector kernel's: the weights dequantized to F32 as
// weights.glsl forms them, F32 dot products. One workgroup per (token, slot) and 2 rows, so each
// chosen expert is read once per slot that chose it: made for decode (a few tokens, reading only
// the chosen experts); for prompt batches it is correct but reads each expert once per token that
// chose it (a grouped-by-expert tiled kernel is still to come). Dispatches per piece of W and per
// group of pairs whose ids, x rows and y rows each fit one binding (Error when one row does not);
// the pieces' dispatches write disjoint rows of y, yet the sequence orders them by barriers (it
// sees one written range).
void mul_mat_id(Sequence& seq, const Experts& w, const BufferView& x, bool x_per_slot, const BufferView& ids,
                int64_t n_tok, int k, const BufferView& y);

// out[t][i] = (accumulate ? out[t][i] : 0) + sum_j weights[t][j] * y[t][j][i], the sum in slot
// order j = 0 .. k-1 (one fma per term), for t < n_tok, i < n: y is [n_tok][k][n], weights
// [n_tok][k], out [n_tok][n] F32. out must not overlap y or weights.
void moe_combine(Sequence& seq, const BufferView& y, const BufferView& weights, int64_t n_tok, int k,
                 int64_t n, const BufferView& out, bool accumulate);

}  // namespace yiti::vk
