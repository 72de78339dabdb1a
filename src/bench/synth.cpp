#include "bench/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

namespace yiti::bench {

// ------------------------------------------------------------------------------------------------
// Shapes and types

std::vector<std::string> synth_presets() { return {"tinyllama", "deepseek-moe", "tiny-llama-test", "tiny-deepseek-test"}; }

SynthShape synth_preset(const std::string& name) {
    SynthShape s;
    s.preset = name;
    if (name == "tinyllama" || name == "tiny-llama-test") {
        // TinyLlama-1.1B: llama, 22 layers, n_embd 2048, 32 heads / 4 KV heads, n_ff 5632, vocab 32000.
        s.arch = "llama";
        s.name = "synth TinyLlama-1.1B shape";
        if (name == "tiny-llama-test") {
            s.name = "synth tiny llama";
            s.n_vocab = 1000;
            s.n_embd = 256;
            s.n_layer = 2;
            s.n_head = 4;
            s.n_head_kv = 2;
            s.n_ff = 512;
        }
        return s;
    }
    if (name == "deepseek-moe" || name == "tiny-deepseek-test") {
        // DeepSeek-V3's attention and routing at a smaller width: MLA with V3's per-head sizes
        // (q_lora 1536, kv_lora 512, 128 nope + 64 rope dims, v 128), one leading dense layer, then
        // 64 routed experts (6 used, sigmoid gating with a selection bias, renormalized, scaled by 2.5)
        // and one shared expert; YaRN rope scaling as V3 has it.
        s.arch = "deepseek2";
        s.name = "synth DeepSeek-V3-style MoE";
        s.n_vocab = 32000;
        s.n_ctx_train = 163840;
        s.n_embd = 2048;
        s.n_layer = 8;
        s.n_head = 16;
        s.n_head_kv = 16;
        s.n_ff = 5632;
        s.rms_eps = 1e-6f;
        s.q_lora_rank = 1536;
        s.kv_lora_rank = 512;
        s.head_dim_nope = 128;
        s.head_dim_rope = 64;
        s.head_dim_v = 128;
        s.n_expert = 64;
        s.n_expert_used = 6;
        s.n_expert_shared = 1;
        s.n_ff_exp = 1024;
        s.n_layer_dense_lead = 1;
        s.expert_weights_scale = 2.5f;
        s.expert_weights_norm = true;
        s.expert_gating = 2;
        s.yarn_factor = 40.0f;
        s.yarn_orig_ctx = 4096;
        s.yarn_log_mul = 0.1f;
        if (name == "tiny-deepseek-test") {
            s.name = "synth tiny deepseek2";
            s.n_vocab = 1000;
            s.n_embd = 256;
            s.n_layer = 3;
            s.n_head = 4;
            s.n_head_kv = 4;
            s.n_ff = 512;
            s.q_lora_rank = 256;
            s.kv_lora_rank = 256;
            s.head_dim_nope = 64;
            s.head_dim_rope = 32;
            s.head_dim_v = 64;
            s.n_expert = 8;
            s.n_expert_used = 2;
            s.n_ff_exp = 256;
        }
        return s;
    }
    std::string list;
    for (auto& p : synth_presets()) list += (list.empty() ? "" : ", ") + p;
    throw Error(strprintf("synth: unknown preset '%s' (known: %s)", name.c_str(), list.c_str()));
}

namespace {

struct TypeEntry {
    const char* name;
    DType base;
    bool mix;
    DType more_bits;
    int file_type;
};
// file_type: llama.cpp's LLAMA_FTYPE_* numbers, so its tools print the right type.
const TypeEntry k_types[] = {
    {"F32", DType::F32, false, DType::F32, 0},         {"F16", DType::F16, false, DType::F16, 1},
    {"BF16", DType::BF16, false, DType::BF16, 32},     {"Q8_0", DType::Q8_0, false, DType::Q8_0, 7},
    {"Q4_0", DType::Q4_0, false, DType::Q4_0, 2},      {"Q4_1", DType::Q4_1, false, DType::Q4_1, 3},
    {"Q5_0", DType::Q5_0, false, DType::Q5_0, 8},      {"Q5_1", DType::Q5_1, false, DType::Q5_1, 9},
    {"IQ4_NL", DType::IQ4_NL, false, DType::IQ4_NL, 25}, {"IQ4_XS", DType::IQ4_XS, false, DType::IQ4_XS, 30},
    {"Q2_K", DType::Q2_K, false, DType::Q2_K, 10},     {"Q3_K", DType::Q3_K, false, DType::Q3_K, 11},
    {"Q4_K", DType::Q4_K, false, DType::Q4_K, 14},     {"Q5_K", DType::Q5_K, false, DType::Q5_K, 16},
    {"Q6_K", DType::Q6_K, false, DType::Q6_K, 18},     {"Q4_K_M", DType::Q4_K, true, DType::Q6_K, 15},
    {"Q5_K_M", DType::Q5_K, true, DType::Q6_K, 17},
};

// llama.cpp's rule for which layers of a K-quant mix get more bits: the first and last eighth,
// and every third layer in between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

}  // namespace

std::vector<std::string> synth_type_names() {
    std::vector<std::string> v;
    for (auto& t : k_types) v.push_back(t.name);
    return v;
}

SynthType synth_type(const std::string& name) {
    for (auto& t : k_types) {
        if (strcasecmp(name.c_str(), t.name) != 0) continue;
        SynthType st;
        st.name = t.name;
        st.base = t.base;
        st.mix = t.mix;
        st.more_bits = t.more_bits;
        st.file_type = t.file_type;
        return st;
    }
    std::string list;
    for (auto& t : k_types) list += (list.empty() ? "" : ", ") + std::string(t.name);
    throw Error(strprintf("synth: unknown type '%s' (known: %s)", name.c_str(), list.c_str()));
}

DType synth_tensor_type(const SynthShape& s, const SynthType& ft, const std::string& name, int il) {
    if (!ft.mix) return ft.base;
    if (name == "output.weight") return ft.more_bits;
    if (name.find("attn_v.weight") != std::string::npos && use_more_bits(il, s.n_layer)) return ft.more_bits;
    if (name.find("ffn_down") != std::string::npos && use_more_bits(il, s.n_layer)) return ft.more_bits;
    return ft.base;
}

// ------------------------------------------------------------------------------------------------
// Tensors

namespace {

enum class Init { Normal, Norm, Bias };

struct TensorSpec {
    std::string name;
    std::vector<int64_t> ne;
    DType type;
    Init init;
    float scale;  // standard deviation of the random part
};

std::vector<TensorSpec> tensor_specs(const SynthShape& s, const SynthType& ft) {
    std::vector<TensorSpec> v;
    const float w = 0.02f;
    auto mat = [&](const std::string& name, std::vector<int64_t> ne, int il) {
        v.push_back({name, std::move(ne), synth_tensor_type(s, ft, name, il), Init::Normal, w});
    };
    auto f32 = [&](const std::string& name, std::vector<int64_t> ne, Init init, float scale) {
        v.push_back({name, std::move(ne), DType::F32, init, scale});
    };
    const int64_t E = s.n_embd, V = s.n_vocab;
    mat("token_embd.weight", {E, V}, -1);
    f32("output_norm.weight", {E}, Init::Norm, 0.02f);
    mat("output.weight", {E, V}, -1);
    for (int il = 0; il < s.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        f32(p + "attn_norm.weight", {E}, Init::Norm, 0.02f);
        if (s.arch == "llama") {
            const int64_t Dh = E / s.n_head;
            mat(p + "attn_q.weight", {E, s.n_head * Dh}, il);
            mat(p + "attn_k.weight", {E, s.n_head_kv * Dh}, il);
            mat(p + "attn_v.weight", {E, s.n_head_kv * Dh}, il);
            mat(p + "attn_output.weight", {s.n_head * Dh, E}, il);
            f32(p + "ffn_norm.weight", {E}, Init::Norm, 0.02f);
            mat(p + "ffn_gate.weight", {E, s.n_ff}, il);
            mat(p + "ffn_up.weight", {E, s.n_ff}, il);
            mat(p + "ffn_down.weight", {s.n_ff, E}, il);
            continue;
        }
        // deepseek2
        const int64_t H = s.n_head, Dk = s.head_dim_nope + s.head_dim_rope;
        mat(p + "attn_q_a.weight", {E, s.q_lora_rank}, il);
        f32(p + "attn_q_a_norm.weight", {s.q_lora_rank}, Init::Norm, 0.02f);
        mat(p + "attn_q_b.weight", {s.q_lora_rank, H * Dk}, il);
        mat(p + "attn_kv_a_mqa.weight", {E, s.kv_lora_rank + s.head_dim_rope}, il);
        f32(p + "attn_kv_a_norm.weight", {s.kv_lora_rank}, Init::Norm, 0.02f);
        mat(p + "attn_kv_b.weight", {s.kv_lora_rank, H * (s.head_dim_nope + s.head_dim_v)}, il);
        mat(p + "attn_output.weight", {H * s.head_dim_v, E}, il);
        f32(p + "ffn_norm.weight", {E}, Init::Norm, 0.02f);
        if (il < s.n_layer_dense_lead) {
            mat(p + "ffn_gate.weight", {E, s.n_ff}, il);
            mat(p + "ffn_up.weight", {E, s.n_ff}, il);
            mat(p + "ffn_down.weight", {s.n_ff, E}, il);
            continue;
        }
        const int64_t F = s.n_ff_exp, NE = s.n_expert;
        f32(p + "ffn_gate_inp.weight", {E, NE}, Init::Normal, w);
        f32(p + "exp_probs_b.bias", {NE}, Init::Bias, 0.01f);
        mat(p + "ffn_gate_exps.weight", {E, F, NE}, il);
        mat(p + "ffn_up_exps.weight", {E, F, NE}, il);
        mat(p + "ffn_down_exps.weight", {F, E, NE}, il);
        if (s.n_expert_shared > 0) {
            const int64_t FS = F * s.n_expert_shared;
            mat(p + "ffn_gate_shexp.weight", {E, FS}, il);
            mat(p + "ffn_up_shexp.weight", {E, FS}, il);
            mat(p + "ffn_down_shexp.weight", {FS, E}, il);
        }
    }
    return v;
}

// Deterministic per-row random numbers (independent of the thread that makes the row).
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {  // splitmix64
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Approximately standard normal: the sum of four 16-bit uniforms (Irwin-Hall), centred and scaled
    // to unit variance. Bounded at +-3.46 sigma, which suits weights.
    float normal() {
        const uint64_t r = next();
        const float sum = (float)((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
        return (sum * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
    }
};

uint64_t mix_seed(uint64_t a, uint64_t b) {
    Rng r(a * 0x100000001B3ull ^ (b + 0x632BE59BD9B4E019ull));
    return r.next();
}

// The minimal vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then SentencePiece pieces for
// common English words (every prefix of each word, so the SPM merges can reach it), then
// placeholder tokens up to n_vocab.
void add_vocab(gguf::Writer& w, int64_t n_vocab) {
    std::vector<std::string> tokens{"<unk>", "<s>", "</s>"};
    std::vector<float> scores{0, 0, 0};
    std::vector<int32_t> types{2, 3, 3};  // UNKNOWN, CONTROL, CONTROL
    for (int b = 0; b < 256; ++b) {
        tokens.push_back(strprintf("<0x%02X>", b));
        scores.push_back(0);
        types.push_back(6);  // BYTE
    }
    static const char* const words[] = {
        "the", "of", "and", "to", "in", "is", "was", "that", "for", "it", "with", "as", "he", "she", "on",
        "be", "at", "by", "this", "had", "not", "are", "but", "from", "or", "have", "an", "they", "which",
        "one", "you", "were", "her", "all", "there", "would", "their", "we", "him", "been", "has", "when",
        "who", "will", "more", "no", "if", "out", "so", "said", "what", "up", "its", "about", "into",
        "than", "them", "can", "only", "other", "new", "some", "could", "time", "these", "two", "may",
        "then", "do", "first", "any", "my", "now", "such", "like", "our", "over", "man", "me", "even",
        "most", "made", "after", "also", "did", "many", "before", "must", "through", "back", "years",
        "where", "much", "your", "way", "well", "down", "should", "because", "each", "just", "those",
        "people", "how", "too", "little", "state", "good", "very", "make", "world", "still", "own", "see",
        "men", "work", "long", "get", "here", "between", "both", "life", "being", "under", "never", "day",
        "same", "another", "know", "while", "last", "might", "us", "great", "old", "year", "off", "come",
        "since", "against", "go", "came", "right", "used", "take", "three", "once", "upon", "girl", "boy",
        "named", "loved", "play", "park", "happy", "friend", "Once", "The", "One", "Hello", "Lily", "Tim"};
    std::set<std::string> have(tokens.begin(), tokens.end());
    std::vector<std::string> pieces;
    auto add = [&](const std::string& t) {
        if (have.insert(t).second) pieces.push_back(t);
    };
    const std::string sp = "\xE2\x96\x81";  // U+2581, SentencePiece's space
    add(sp);
    for (char c = 'a'; c <= 'z'; ++c) add(std::string(1, c));
    for (char c = 'A'; c <= 'Z'; ++c) add(std::string(1, c));
    for (char c = '0'; c <= '9'; ++c) add(std::string(1, c));
    for (const char* p = ".,!?;:'\"()-"; *p; ++p) add(std::string(1, *p));
    for (const char* wd : words) {
        const std::string s = wd;
        for (size_t k = 1; k <= s.size(); ++k) add(sp + s.substr(0, k));
        for (size_t k = 2; k <= s.size(); ++k) add(s.substr(0, k));
    }
    for (const char* suf : {"ing", "ed", "er", "ly", "es", "s", "tion", "ment"}) add(suf);
    for (size_t k = 0; k < pieces.size() && (int64_t)tokens.size() < n_vocab; ++k) {
        tokens.push_back(pieces[k]);
        // Longer pieces score higher, so whole words win over their parts.
        scores.push_back(-1000.0f + 10.0f * (float)pieces[k].size() - 0.001f * (float)k);
        types.push_back(1);  // NORMAL
    }
    while ((int64_t)tokens.size() < n_vocab) {
        tokens.push_back(strprintf("<unused%lld>", (long long)tokens.size()));
        scores.push_back(-10000.0f);
        types.push_back(5);  // UNUSED
    }
    if ((int64_t)tokens.size() > n_vocab)
        throw Error(strprintf("synth: n_vocab %lld is smaller than the minimal vocabulary (%zu tokens)",
                              (long long)n_vocab, tokens.size()));
    w.set_str("tokenizer.ggml.model", "llama");
    w.set_arr_str("tokenizer.ggml.tokens", tokens);
    w.set_arr_f32("tokenizer.ggml.scores", scores);
    w.set_arr_i32("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_bool("tokenizer.ggml.add_bos_token", true);
    w.set_bool("tokenizer.ggml.add_eos_token", false);
}

void add_metadata(gguf::Writer& w, const SynthShape& s, const SynthType& ft) {
    const std::string a = s.arch + ".";
    w.set_str("general.architecture", s.arch);
    w.set_str("general.name", s.name + " " + ft.name);
    w.set_u32("general.file_type", (uint32_t)ft.file_type);
    w.set_u32("general.quantization_version", 2);
    w.set_u32(a + "vocab_size", (uint32_t)s.n_vocab);
    w.set_u32(a + "context_length", (uint32_t)s.n_ctx_train);
    w.set_u32(a + "embedding_length", (uint32_t)s.n_embd);
    w.set_u32(a + "block_count", (uint32_t)s.n_layer);
    w.set_u32(a + "feed_forward_length", (uint32_t)s.n_ff);
    w.set_u32(a + "attention.head_count", (uint32_t)s.n_head);
    w.set_u32(a + "attention.head_count_kv", (uint32_t)s.n_head_kv);
    w.set_f32(a + "attention.layer_norm_rms_epsilon", s.rms_eps);
    w.set_f32(a + "rope.freq_base", s.rope_freq_base);
    if (s.arch == "llama") {
        w.set_u32(a + "rope.dimension_count", (uint32_t)(s.n_embd / s.n_head));
        return;
    }
    w.set_u32(a + "rope.dimension_count", (uint32_t)s.head_dim_rope);
    w.set_u32(a + "attention.key_length", (uint32_t)(s.head_dim_nope + s.head_dim_rope));
    w.set_u32(a + "attention.value_length", (uint32_t)s.head_dim_v);
    w.set_u32(a + "attention.q_lora_rank", (uint32_t)s.q_lora_rank);
    w.set_u32(a + "attention.kv_lora_rank", (uint32_t)s.kv_lora_rank);
    w.set_u32(a + "leading_dense_block_count", (uint32_t)s.n_layer_dense_lead);
    w.set_u32(a + "expert_count", (uint32_t)s.n_expert);
    w.set_u32(a + "expert_used_count", (uint32_t)s.n_expert_used);
    w.set_u32(a + "expert_shared_count", (uint32_t)s.n_expert_shared);
    w.set_u32(a + "expert_feed_forward_length", (uint32_t)s.n_ff_exp);
    w.set_f32(a + "expert_weights_scale", s.expert_weights_scale);
    w.set_bool(a + "expert_weights_norm", s.expert_weights_norm);
    w.set_u32(a + "expert_gating_func", (uint32_t)s.expert_gating);
    if (s.yarn_factor > 0) {
        w.set_str(a + "rope.scaling.type", "yarn");
        w.set_f32(a + "rope.scaling.factor", s.yarn_factor);
        w.set_u32(a + "rope.scaling.original_context_length", (uint32_t)s.yarn_orig_ctx);
        w.set_f32(a + "rope.scaling.yarn_log_multiplier", s.yarn_log_mul);
    }
}

void check_shapes(const std::vector<TensorSpec>& specs) {
    for (const TensorSpec& t : specs) {
        const int64_t bs = dtype_info(t.type).block_size;
        if (t.ne[0] % bs != 0)
            throw Error(strprintf("synth: tensor '%s' has rows of %lld, not a multiple of %s's block of %lld",
                                  t.name.c_str(), (long long)t.ne[0], dtype_name(t.type), (long long)bs));
        if (!dtype_info(t.type).supported || !quant::ref_traits(t.type) || !quant::ref_traits(t.type)->from_float)
            if (t.type != DType::F32)
                throw Error(strprintf("synth: type %s cannot be written", dtype_name(t.type)));
    }
}

}  // namespace

SynthResult synth_write(const SynthShape& s, const SynthType& ft, const std::string& path, const SynthOptions& opt) {
    if (s.arch != "llama" && s.arch != "deepseek2")
        throw Error(strprintf("synth: architecture '%s' is not supported", s.arch.c_str()));
    if (s.n_embd % s.n_head != 0) throw Error("synth: n_embd must be a multiple of n_head");
    const std::vector<TensorSpec> specs = tensor_specs(s, ft);
    check_shapes(specs);

    gguf::Writer w;
    add_metadata(w, s, ft);
    add_vocab(w, s.n_vocab);
    SynthResult res;
    size_t total = 0;
    for (const TensorSpec& t : specs) {
        total += w.declare_tensor(t.name, t.type, t.ne);
        int64_t n = 1;
        for (int64_t x : t.ne) n *= x;
        res.n_params += n;
    }
    res.n_tensors = specs.size();

    ThreadPool pool(opt.n_threads > 0 ? opt.n_threads : default_thread_count());
    w.begin(path);
    size_t done = 0;
    constexpr size_t k_slab_bytes = 32u << 20;  // output bytes per parallel step
    std::vector<uint8_t> slab;
    for (size_t ti = 0; ti < specs.size(); ++ti) {
        const TensorSpec& t = specs[ti];
        const int64_t n_row = t.ne[0];
        int64_t n_rows = 1;
        for (size_t d = 1; d < t.ne.size(); ++d) n_rows *= t.ne[d];
        const size_t rb = row_size(t.type, n_row);
        const int64_t rows_per_slab = std::max<int64_t>(1, (int64_t)(k_slab_bytes / rb));
        const uint64_t tseed = mix_seed(opt.seed, ti);
        for (int64_t r0 = 0; r0 < n_rows; r0 += rows_per_slab) {
            const int64_t nr = std::min(rows_per_slab, n_rows - r0);
            slab.resize((size_t)nr * rb);
            pool.parallel_for(nr, 8, [&](int64_t b, int64_t e) {
                std::vector<float> row((size_t)n_row);
                for (int64_t r = b; r < e; ++r) {
                    Rng rng(mix_seed(tseed, (uint64_t)(r0 + r)));
                    for (int64_t k = 0; k < n_row; ++k) {
                        const float z = rng.normal();
                        switch (t.init) {
                            case Init::Normal: row[(size_t)k] = t.scale * z; break;
                            case Init::Norm: row[(size_t)k] = 1.0f + t.scale * z; break;
                            case Init::Bias: row[(size_t)k] = t.scale * z; break;
                        }
                    }
                    uint8_t* dst = slab.data() + (size_t)r * rb;
                    if (t.type == DType::F32) memcpy(dst, row.data(), rb);
                    else quant::quantize_row_ref(t.type, row.data(), dst, n_row);
                }
            });
            w.write_data(slab.data(), slab.size());
            done += slab.size();
        }
        if (opt.progress) opt.progress(done, total);
    }
    w.finish();
    res.file_bytes = total;
    return res;
}

}  // namespace yiti::bench
