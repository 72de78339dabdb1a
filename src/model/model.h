// Models: hyperparameters from GGUF metadata, weights bound to tensors, one forward pass per batch.
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/threadpool.h"
#include "cpu/ops.h"
#include "cpu/packed.h"
#include "gguf/gguf.h"
#include "kv/kv_cache.h"
#include "runtime/backend.h"
#include "runtime/placement.h"

namespace yiti::model {

enum class ExpertGating { Softmax = 1, Sigmoid = 2 };

struct HParams {
    std::string arch;
    std::string name;
    int64_t n_vocab = 0;
    int64_t n_ctx_train = 0;
    int64_t n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int64_t head_dim_k = 0;  // per head: q and k
    int64_t head_dim_v = 0;  // per head: v
    int64_t n_ff = 0;
    float rms_eps = 1e-5f;
    cpu::RopeParams rope;
    // Mixture of experts
    int n_expert = 0;
    int n_expert_used = 0;
    int n_expert_shared = 0;
    int64_t n_ff_exp = 0;
    int n_layer_dense_lead = 0;
    ExpertGating expert_gating = ExpertGating::Softmax;
    bool expert_weights_norm = false;
    float expert_weights_scale = 1.0f;
    int n_expert_groups = 0;
    int n_expert_groups_used = 0;
    // Multi-head latent attention (deepseek2)
    int64_t q_lora_rank = 0;
    int64_t kv_lora_rank = 0;
    float attn_scale = 0;  // 0: 1/sqrt(head_dim_k)
};

// One step's work: the tokens of several sequences, each continuing its own KV cache.
struct BatchSeq {
    kv::SeqKV* kv = nullptr;
    int64_t first = 0;         // index of its first token in Batch::tokens
    int64_t n = 0;             // number of tokens
    bool all_logits = false;   // logits for every token, or only for the last
    bool no_logits = false;    // a prompt chunk that needs no logits at all
};
struct Batch {
    std::vector<int32_t> tokens;
    std::vector<BatchSeq> seqs;
    // Rows of logits the forward pass returns, in sequence order.
    int64_t n_outputs() const;
    // After a pass: each sequence's cache now holds its tokens of this batch. The caller (engine,
    // session) advances the positions; forward() leaves them as they were.
    void advance() const;
};

struct ModelStats {
    size_t weight_bytes = 0;          // all tensors
    size_t active_bytes_per_token = 0;  // weights read to generate one token (routed experts: only those used)
    int64_t n_params = 0;
    int64_t n_active_params = 0;
};

// How multi-head latent attention is computed: on the latent cache with attn_kv_b folded into the
// query and output ("absorbed", the decode form), or by expanding cached latents into per-head keys
// and values ("expanded"). Auto: absorbed for single-token steps, expanded for prompt chunks.
enum class AttnForm { Auto, Absorbed, Expanded };

struct LoadOptions {
    // Where the tensors go (-ngl, -ot, --device); the default keeps everything on the CPU.
    runtime::PlacementOptions placement;
    // A progress line on stderr while the weights are prepared (repacked, uploaded).
    bool progress = false;
};

class Model {
public:
    virtual ~Model() = default;

    // Opens, validates, places and binds a model (weights placed on a GPU are uploaded there);
    // throws Error naming the problem.
    static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opt = {});

    // The placement table the model was loaded with (everything on "cpu" without GPU flags).
    const runtime::PlacementPlan& plan() const { return plan_; }
    // Messages of the loading worth showing the user (a tensor a device cannot take stays on the CPU).
    const std::vector<std::string>& load_warnings() const { return warnings_; }
    // Where each layer's attention runs and its KV cache lives.
    virtual std::vector<Device> layer_devices() const { return std::vector<Device>((size_t)hp_.n_layer); }
    // A KV cache for this model: host storage for the layers on the CPU, device storage for the rest.
    std::unique_ptr<kv::KVCache> make_cache(const kv::KVLayout& layout, int64_t max_tokens) const;

    const HParams& hparams() const { return hp_; }
    const gguf::File& file() const { return *file_; }
    std::shared_ptr<const gguf::File> file_ptr() const { return file_; }
    virtual ModelStats stats() const;

    // Where the weights the kernels read live after loading: repacked into the CPU kernels' layout,
    // copied into the model's own memory, or read from the file's mapping. A tensor can be both
    // repacked and copied (tied embeddings: the lookups read the copy, the logits the repacked form).
    struct Placement {
        bool repacked = false, copied = false, mapped = false;
    };
    // The placement of a tensor the model uses (all false for one it does not read, or a name that
    // is not in the file).
    Placement placement(const std::string& name) const;
    // Bytes the model holds in memory of its own (repacked and copied weights), beside the file.
    size_t memory_bytes() const;

    // Only meaningful for architectures with latent attention.
    virtual void set_attention_form(AttnForm) {}

    // The cache element type of the fast mode (exact mode always uses F32).
    virtual DType preferred_kv_type() const { return DType::F16; }

    // What one token occupies in the cache, per layer.
    virtual kv::KVLayout kv_layout(DType kv_type) const;

    // Runs the batch: stores each sequence's keys and values in its cache at positions
    // kv->n_tokens onwards (the caller has reserved the slots) and writes n_outputs() rows of
    // n_vocab logits. It does not advance the sequences' positions: the caller does (Batch::advance).
    virtual void forward(runtime::Runtime& rt, kv::KVCache& cache, const Batch& batch, float* logits) = 0;

protected:
    // Builds the placement table (opt.placement) before the subclass binds any tensor.
    Model(std::shared_ptr<gguf::File> file, const LoadOptions& opt);

    // Tensor binding with shape checks; a missing required tensor or a wrong shape is an Error
    // naming the tensor, the expected and the actual shape.
    // The tensor goes to the device the placement table names (its backend prepares it there).
    Tensor tensor(const std::string& name, std::vector<int64_t> shape, bool required = true);
    // A 1-D F32 tensor of n values (norm weights, biases).
    Tensor tensor_f32(const std::string& name, int64_t n, bool required = true);
    // Tied output embeddings: a view of the token embeddings prepared for the output's device
    // (the device of output_norm.weight).
    Tensor tied_output(const Tensor& tok_embd);
    // Puts a tensor the model derived at load (data in the model's own memory) on `device` and
    // prepares it there (the CPU: repacked when its type has packed kernels).
    void place(Tensor& t, const Device& device);
    // Tensors one op reads together (a layer's stacked experts) on one device: when a device
    // could not take one of them, the others join it on the CPU.
    void keep_together(std::initializer_list<Tensor*> ts);
    std::string key(const std::string& suffix) const { return hp_.arch + "." + suffix; }
    // Repacks a matrix (2-D, or stacked 3-D experts) into the CPU kernels' interleaved layout when
    // its type has packed kernels on this CPU (cpu/packed.h); tensor() does this for every matrix
    // but the token embeddings. Tied output embeddings call it on their copy.
    void pack(Tensor& t);
    int64_t need_int(const std::string& k) const;
    void read_common_hparams();

    std::shared_ptr<gguf::File> file_;
    HParams hp_;

private:
    friend std::unique_ptr<Model> load_model_impl(const std::string& path, const LoadOptions& opt);
    // For a tensor the kernels read in place: small ones move to a huge-page arena, `copy` ones to
    // the weights' huge pages, the rest stay in the file's mapping (see model.cpp).
    void keep_in_memory(Tensor& t, bool copy);
    // Huge-page-backed anonymous memory handed out back to back, 64-byte aligned, from chunks of
    // chunk_bytes; a request over a quarter of that gets a mapping of its own.
    class Arena {
    public:
        static constexpr size_t kAlign = 64;
        explicit Arena(size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}
        Arena(const Arena&) = delete;
        Arena& operator=(const Arena&) = delete;
        ~Arena();
        uint8_t* alloc(size_t bytes);  // nullptr when the memory cannot be mapped
        size_t used_bytes() const;     // in whole huge pages

    private:
        uint8_t* map(size_t bytes);  // a new mapping, rounded up to huge pages
        size_t chunk_bytes_;
        std::vector<std::pair<uint8_t*, size_t>> maps_;  // (start, bytes asked for)
        uint8_t* chunk_ = nullptr;        // the chunk handing out memory now
        size_t chunk_used_ = 0, own_ = 0, full_ = 0;  // used of chunk_; mappings of their own; earlier chunks
    };
    Arena small_{2u << 20};      // tensors of up to 64 KB the forward pass reads (norm weights, biases)
    Arena weights_{256u << 20};  // repacked weights and copied embeddings, back to back in the order of binding
    std::deque<cpu::PackedWeights> prepared_;  // what the CPU tensors' `prepared` point at (stable addresses)
    std::deque<std::unique_ptr<PreparedWeights>> device_prepared_;  // ... and the GPU tensors'
    runtime::PlacementPlan plan_;
    std::map<std::string, Device> device_of_;  // from plan_: tensors not on the CPU
    std::vector<std::string> warnings_;
    // Loading progress (LoadOptions::progress): bytes of the file's tensors bound so far.
    void note_progress(const std::string& name);
    bool progress_ = false;
    uint64_t progress_done_ = 0, progress_total_ = 0;
    int progress_shown_ = -1;
    // Prepares t for `device`; false (t unchanged) when that device cannot take it.
    bool prepare_on(Tensor& t, const Device& device);
    std::map<std::string, Placement> placement_;
    std::unique_ptr<ThreadPool> pack_pool_;          // during loading only
};

// Architectures (the table in model.cpp maps GGUF names to these).
std::vector<std::string> supported_architectures();
std::unique_ptr<Model> make_llama(std::shared_ptr<gguf::File> f, const LoadOptions& opt);      // llama, qwen2
std::unique_ptr<Model> make_deepseek2(std::shared_ptr<gguf::File> f, const LoadOptions& opt);  // deepseek2

}  // namespace yiti::model
