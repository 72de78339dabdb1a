// The Vulkan kernels' host side: each op records its dispatches into a Sequence. Activations are
// F32. Every op splits its work so that no binding exceeds the device's maxStorageBufferRange.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "cpu/ops.h"
#include "kv/kv_cache.h"
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

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight for n_rows rows of n floats, ld_x / ld_out
// floats apart (0: n, contiguous). out may be x (with the same stride).
void rms_norm(Sequence& seq, const BufferView& x, const BufferView& weight, int64_t n, int64_t n_rows,
              float eps, const BufferView& out, int64_t ld_x = 0, int64_t ld_out = 0);

// out[i] = silu(gate[i]) * up[i] for n floats (SwiGLU). out may be gate.
void silu_mul(Sequence& seq, const BufferView& gate, const BufferView& up, int64_t n, const BufferView& out);

// out[i] = a[i] + b[i] for n floats; with b_n > 0, b holds one row of b_n floats added to every row
// of a (n a multiple of b_n: a bias). out may be a.
void add(Sequence& seq, const BufferView& a, const BufferView& b, int64_t n, const BufferView& out,
         int64_t b_n = 0);

// out[t] = row ids[t] of w as F32 (embedding lookup; w of any type mul_mat takes, the values of
// its reference dequantization), for n tokens: out is [n][w.n_in] F32. The ids are checked on the
// host (Error for one out of range, as cpu::get_rows) and uploaded into ids_dev (n int32s).
void get_rows(Sequence& seq, const Matrix& w, const int32_t* ids, int64_t n, const BufferView& ids_dev,
              const BufferView& out);

// RoPE (cpu::RopeParams: normal or NEOX pairs, YaRN, partial rotation n_rot <= head_stride) in
// place over x: [n_rows][n_heads][head_stride] F32; row t at position pos[t]. The positions are
// uploaded into pos_dev (n_rows int32s).
void rope(Sequence& seq, const cpu::RopeParams& p, const BufferView& x, int64_t n_rows, int n_heads,
          int64_t head_stride, const int32_t* pos, const BufferView& pos_dev);

// out[r] = softmax(x[r]) (cpu::softmax) for n_rows contiguous rows of n floats. out may be x.
void softmax(Sequence& seq, const BufferView& x, int64_t n, int64_t n_rows, const BufferView& out);

// The device storage of the paged KV cache for some layers (the bookkeeping, kv::BlockPool and
// kv::SeqKV block tables, stays on the host): per layer, a K and a V buffer laid out as the CPU
// cache lays out one layer, [n_blocks][block_size][k_dim] (V: v_dim) of layout.type (F16 or F32).
// A model split across devices has one KVStorage per device, holding the layers whose attention
// runs there.
struct KVStorage {
    struct Layer {
        int il = 0;  // the model's layer index
        Buffer k, v;
    };
    kv::KVLayout layout;
    int n_blocks = 0;
    std::vector<Layer> layers;
    // The storage of model layer il (asserted to be held here).
    const Layer& layer(int il) const;
};

// Allocates the storage of `layers` (model layer indices) for n_blocks blocks. Throws Error for a
// cache type other than F16 / F32, or a layer's K or V larger than one binding.
KVStorage alloc_kv_storage(Context& ctx, const kv::KVLayout& layout, int n_blocks,
                           const std::vector<int>& layers);

// The cache slot (block * block_size + offset in the block) of position pos of a sequence: what
// kv_store takes, computed from the host's block table.
int32_t kv_slot(const kv::SeqKV& seq, int block_size, int64_t pos);

// Writes n_tok rows of K ([n_tok][k_dim] F32) and V ([n_tok][v_dim] F32; ignored when v_dim is 0)
// into layer il's storage at slots[t] (converted to the cache type as cpu::store_kv_row converts).
// The slots are uploaded into slots_dev (n_tok int32s); they must be distinct.
void kv_store(Sequence& seq, const KVStorage& kv, int il, const BufferView& k, const BufferView& v,
              int64_t n_tok, const int32_t* slots, const BufferView& slots_dev);

// The int32s of the table that attention() uploads for `seqs`: two per token, plus each
// sequence's block table (its blocks up to the batch's last position).
int64_t attention_meta_words(const std::vector<cpu::AttnSeq>& seqs, int block_size);

// cpu::attention on the device, over layer il's storage: each token of seqs attends to its
// sequence's cache positions [0, its position] (so a sequence's tokens are causal within the
// batch once kv_store has written them). q: [n_tok][n_head * head_dim_k] F32, out:
// [n_tok][n_head * head_dim_v] F32; head_dim_k, head_dim_v <= 1024 (heads up to 256 values take
// the common kernel; larger ones, as DeepSeek's absorbed MLA with one KV head of 576 values and V
// the first 512 of them (a layout with v_dim 0), a specialization with more dimensions per thread).
// One workgroup per (token, head): made for decode (one token per sequence); prefill rows (several
// tokens of a sequence) are causal by their positions. The positions and block tables are uploaded
// into meta_dev (attention_meta_words int32s).
void attention(Sequence& seq, const cpu::AttnParams& p, const KVStorage& kv, int il,
               const std::vector<cpu::AttnSeq>& seqs, const BufferView& q, const BufferView& out,
               const BufferView& meta_dev);

}  // namespace yiti::vk
