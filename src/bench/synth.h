// Synthetic models for benchmarks: random weights in realistic shapes, written as GGUF files that
// yiti and the llama.cpp family load. Weights are N(0, 0.02)-like, norms about 1, so activations stay
// finite through every layer; a minimal SentencePiece-style vocabulary makes the files tokenize.
// Tensors are generated and quantized in slabs on the thread pool and streamed to disk, so files
// larger than memory can be written.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace yiti::bench {

struct SynthShape {
    std::string preset;  // name it was made from
    std::string arch;    // "llama" or "deepseek2"
    std::string name;    // general.name
    int64_t n_vocab = 32000;
    int64_t n_ctx_train = 2048;
    int64_t n_embd = 2048;
    int n_layer = 22;
    int n_head = 32;
    int n_head_kv = 4;
    int64_t n_ff = 5632;  // dense FFN
    float rms_eps = 1e-5f;
    float rope_freq_base = 10000.0f;
    // deepseek2 (MLA + MoE)
    int64_t q_lora_rank = 0;
    int64_t kv_lora_rank = 0;
    int64_t head_dim_nope = 0;
    int64_t head_dim_rope = 0;
    int64_t head_dim_v = 0;
    int n_expert = 0;
    int n_expert_used = 0;
    int n_expert_shared = 0;
    int64_t n_ff_exp = 0;
    int n_layer_dense_lead = 0;
    float expert_weights_scale = 1.0f;
    bool expert_weights_norm = false;
    int expert_gating = 2;  // 1 softmax, 2 sigmoid
    float yarn_factor = 0;  // 0: no YaRN metadata
    int64_t yarn_orig_ctx = 4096;
    float yarn_log_mul = 0.1f;
};

// Named shapes: "tinyllama" (TinyLlama-1.1B), "deepseek-moe" (DeepSeek-V3-style MLA + 64 experts,
// a few GB), "tiny-llama-test" and "tiny-deepseek-test" (small files for tests).
std::vector<std::string> synth_presets();
SynthShape synth_preset(const std::string& name);  // throws Error for an unknown name

// A file type: one tensor type for every matrix ("Q8_0", "F16", "Q4_K", ...) or a llama.cpp-style
// K-quant mix ("Q4_K_M", "Q5_K_M": mostly the base type, output and about half of attn_v / ffn_down
// in Q6_K).
struct SynthType {
    std::string name;
    DType base = DType::Q8_0;
    bool mix = false;
    DType more_bits = DType::Q6_K;  // mixes: the type of the tensors that get more bits
    int file_type = 7;              // general.file_type (llama.cpp's LLAMA_FTYPE numbering)
};
std::vector<std::string> synth_type_names();
SynthType synth_type(const std::string& name);  // throws Error for an unknown name

// The type each tensor gets in a file of type ft (1-D tensors and the router stay F32).
DType synth_tensor_type(const SynthShape& s, const SynthType& ft, const std::string& name, int il);

struct SynthOptions {
    uint64_t seed = 1;
    int n_threads = 0;  // 0: all cores
    // Progress: called after each tensor with (bytes written so far, total bytes).
    std::function<void(size_t, size_t)> progress;
};

struct SynthResult {
    size_t file_bytes = 0;
    size_t n_tensors = 0;
    int64_t n_params = 0;
};

// Writes the model to path (throws Error on I/O or shape problems).
SynthResult synth_write(const SynthShape& s, const SynthType& ft, const std::string& path, const SynthOptions& opt);

}  // namespace yiti::bench
