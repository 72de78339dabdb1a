#include "model/model.h"

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/huge_pages.h"
#include "cpu/packed.h"

namespace yiti::model {

namespace {
struct ArchEntry {
    const char* name;
    std::unique_ptr<Model> (*make)(std::shared_ptr<gguf::File>, const LoadOptions&);
};
const ArchEntry k_archs[] = {
    {"llama", make_llama},
    {"qwen2", make_llama},
    {"deepseek2", make_deepseek2},
};
}  // namespace

std::vector<std::string> supported_architectures() {
    std::vector<std::string> v;
    for (auto& a : k_archs) v.push_back(a.name);
    return v;
}

int64_t Batch::n_outputs() const {
    int64_t n = 0;
    for (auto& s : seqs) n += s.no_logits ? 0 : (s.all_logits ? s.n : 1);
    return n;
}

void Batch::advance() const {
    for (const BatchSeq& s : seqs) s.kv->n_tokens += (int32_t)s.n;
}

std::unique_ptr<Model> load_model_impl(const std::string& path, const LoadOptions& opt) {
    std::shared_ptr<gguf::File> f = gguf::File::open(path);
    auto arch = f->get_str("general.architecture");
    if (!arch) throw Error(strprintf("model: %s: metadata 'general.architecture' is missing", path.c_str()));
    for (auto& a : k_archs)
        if (*arch == a.name) {
            std::unique_ptr<Model> m = a.make(f, opt);
            if (m->progress_ && m->progress_shown_ >= 0 && m->progress_shown_ < 100) {
                m->progress_done_ = m->progress_total_;
                m->note_progress("");
            }
            m->pack_pool_.reset();
            return m;
        }
    std::string list;
    for (auto& a : k_archs) list += std::string(list.empty() ? "" : ", ") + a.name;
    throw Error(strprintf("model: %s: architecture '%s' is not supported (supported: %s)", path.c_str(),
                          arch->c_str(), list.c_str()));
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opt) {
    // A forward pass allocates activation buffers of up to tens of MB (prompt batches). By default
    // glibc maps each one afresh above 128 KB and unmaps it on free, so every pass pays page faults
    // and the kernel's zeroing of every page again; keep them in the heap for reuse instead.
    static const bool malloc_tuned = [] {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
        return true;
    }();
    (void)malloc_tuned;
    return load_model_impl(path, opt);
}

Model::Model(std::shared_ptr<gguf::File> file, const LoadOptions& opt) : file_(std::move(file)) {
    progress_ = opt.progress;
    for (auto& t : file_->tensors()) progress_total_ += t.size;
    const runtime::PlacementOptions& po = opt.placement;
    if (po.n_gpu_layers <= 0 && po.overrides.empty() && po.devices.empty()) {
        // Everything on the CPU: the table without asking the GPUs.
        runtime::DeviceInfo cpu;
        cpu.id = "cpu";
        cpu.type = "cpu";
        plan_ = runtime::plan_placement(*file_, 0, po, {cpu});
        return;
    }
    const std::string arch = file_->get_str("general.architecture").value_or("");
    const int n_layer = (int)file_->get_int(arch + ".block_count").value_or(0);
    plan_ = runtime::plan_placement(*file_, n_layer, po, runtime::list_devices());
    for (auto& w : plan_.warnings) warnings_.push_back(w);
    for (auto& t : plan_.tensors)
        if (t.device != "cpu") device_of_[t.name] = runtime::find_device(t.device).device;
}

std::unique_ptr<kv::KVCache> Model::make_cache(const kv::KVLayout& layout, int64_t max_tokens) const {
    return std::make_unique<kv::KVCache>(layout, max_tokens, layer_devices(), runtime::device_kv_storage());
}

bool Model::prepare_on(Tensor& t, const Device& device) {
    if (device.kind == DeviceKind::CPU) return true;
    Tensor g = t;
    g.device = device;
    g.prepared = nullptr;
    if (!runtime::prepare_weights(g, device_prepared_)) {
        warnings_.push_back(strprintf("%s: %s has no kernels for type %s; it stays on the CPU", t.name.c_str(),
                                      device.name().c_str(), dtype_name(t.type)));
        plan_.move(t.name, "cpu");
        return false;
    }
    t = g;
    return true;
}

void Model::place(Tensor& t, const Device& device) {
    if (!prepare_on(t, device)) t.device = Device{};
    if (t.device.kind == DeviceKind::CPU) pack(t);
}

void Model::keep_together(std::initializer_list<Tensor*> ts) {
    bool same = true;
    for (Tensor* t : ts) same = same && t->device == (*ts.begin())->device;
    if (same) return;
    for (Tensor* t : ts) {
        if (t->device.kind == DeviceKind::CPU) continue;
        warnings_.push_back(strprintf("%s: kept on the CPU with the tensors it is read with", t->name.c_str()));
        std::erase_if(device_prepared_, [&](auto& p) { return p.get() == t->prepared; });
        plan_.move(t->name, "cpu");
        t->device = Device{};
        t->prepared = nullptr;
        pack(*t);
        if (!t->prepared) keep_in_memory(*t, false);
    }
}

Tensor Model::tied_output(const Tensor& tok_embd) {
    Tensor t = tok_embd;
    t.prepared = nullptr;
    t.device = Device{};
    auto it = device_of_.find("output_norm.weight");
    place(t, it == device_of_.end() ? Device{} : it->second);
    return t;
}

Model::Arena::~Arena() {
    for (auto& m : maps_) unmap_huge_pages(m.first, m.second);
}

uint8_t* Model::Arena::map(size_t bytes) {
    // Pages never written are never backed: the unused end of a chunk costs no memory.
    uint8_t* p = map_huge_pages(bytes);
    if (p) maps_.emplace_back(p, bytes);
    return p;
}

uint8_t* Model::Arena::alloc(size_t bytes) {
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    if (bytes > chunk_bytes_ / 4) {
        uint8_t* p = map(bytes);
        if (p) own_ += huge_page_round(bytes);
        return p;
    }
    if (!chunk_ || chunk_used_ + bytes > chunk_bytes_) {
        uint8_t* c = map(chunk_bytes_);
        if (!c) return nullptr;
        if (chunk_) full_ += huge_page_round(chunk_used_);
        chunk_ = c;
        chunk_used_ = 0;
    }
    uint8_t* p = chunk_ + chunk_used_;
    chunk_used_ += bytes;
    return p;
}

size_t Model::Arena::used_bytes() const { return own_ + full_ + huge_page_round(chunk_used_); }

void Model::pack(Tensor& t) {
    if (!t.valid() || t.prepared || t.n_dims < 2 || t.n_dims > 3) return;
    const cpu::PackedKernels* pk = cpu::packed_kernels(t.type);
    if (!pk) return;
    const int64_t n_in = t.ne[0], n_rows = t.ne[1], n_mat = t.ne[2];
    const size_t gb = pk->group_bytes(n_in);
    const int64_t n_groups = (n_rows + cpu::kPackRows - 1) / cpu::kPackRows;
    const size_t per_mat = (size_t)n_groups * gb;
    const size_t bytes = per_mat * (size_t)n_mat;
    // Back to back with the weights bound before (a 288 KB matrix on a 2 MB mapping of its own left
    // most of a huge page empty, and added a region to the decode step's working set).
    uint8_t* p = weights_.alloc(bytes);
    if (!p) throw Error(strprintf("model: cannot allocate %zu bytes for packed '%s'", bytes, t.name.c_str()));
    if (!pack_pool_) pack_pool_ = std::make_unique<ThreadPool>(default_thread_count());
    const size_t ld = t.nb[1];
    pack_pool_->parallel_for(n_mat * n_groups, 4, [&](int64_t b, int64_t e) {
        for (int64_t it = b; it < e; ++it) {
            const int64_t m = it / n_groups, g = it % n_groups;
            const int64_t r0 = g * cpu::kPackRows;
            const int nr = (int)std::min<int64_t>(cpu::kPackRows, n_rows - r0);
            pk->pack_group(t.row(r0, m), ld, nr, p + (size_t)m * per_mat + (size_t)g * gb, n_in);
        }
    });
    cpu::PackedWeights& pw = prepared_.emplace_back();
    pw.device = t.device;
    pw.data = p;
    pw.group_bytes = gb;
    pw.matrix_bytes = per_mat;
    t.prepared = &pw;
    placement_[t.name].repacked = true;
}

// Where the tensors the kernels read in place (not repacked) live. This project's VM stalls for
// ~100-150 us on the first touch of a 2 MB region after the host has passed over it, which happens
// to every region about 0.8 times a second however often it is read (a 1 GiB buffer streamed over
// and over: 0.8 stalls per second per region, at the region's first 256 KB), and to 4 KB guest pages
// at about twice that rate (their page tables stall too). A matrix product pays such a stall on one
// thread while the other goes on; the serial steps of a decode step pay it in full. So:
// - small tensors (norm weights, biases) are copied into one huge-page arena: in the file mapping,
//   each TinyLlama norm sat on its own page, and 1-2% of the 44 RMS norms of a decode token stalled
//   (mean 6.9 us per norm against a median of 2.1 us; in the arena 1.8 against 1.4 us);
// - the token embeddings, read a row at a time, get a huge-page copy: in the file mapping nearly
//   every new token's row stalled (105-165 us at the median per token; 2 us in the copy);
// - larger tensors without a packed layout are streamed from the mapping, whose pages a whole pass
//   touches anyway (copying them would double their memory for little).
void Model::keep_in_memory(Tensor& t, bool copy) {
    const size_t bytes = t.nb[3] * (size_t)t.ne[3];
    if (!t.data || bytes == 0) return;
    constexpr size_t kSmall = 64u << 10;
    uint8_t* dst = bytes <= kSmall ? small_.alloc(bytes) : copy ? weights_.alloc(bytes) : nullptr;
    if (dst) {
        memcpy(dst, t.data, bytes);
        t.data = dst;
        placement_[t.name].copied = true;
        return;
    }
    placement_[t.name].mapped = true;
}

size_t Model::memory_bytes() const {
    return small_.used_bytes() + weights_.used_bytes();
}

Model::Placement Model::placement(const std::string& name) const {
    auto it = placement_.find(name);
    return it == placement_.end() ? Placement{} : it->second;
}

void Model::note_progress(const std::string& name) {
    if (!progress_ || progress_total_ == 0) return;
    if (const gguf::TensorInfo* ti = file_->find_tensor(name)) progress_done_ += ti->size;
    const int pct = (int)(100 * std::min(progress_done_, progress_total_) / progress_total_);
    if (pct == progress_shown_) return;
    progress_shown_ = pct;
    fprintf(stderr, "\rloading %s: %3d%% (%s of %s)%s", file_->path().c_str(), pct,
            runtime::human_bytes((double)progress_done_).c_str(), runtime::human_bytes((double)progress_total_).c_str(),
            pct >= 100 ? "\n" : "");
    fflush(stderr);
}

Tensor Model::tensor(const std::string& name, std::vector<int64_t> shape, bool required) {
    struct Noted {
        Model* m;
        const std::string& name;
        ~Noted() { m->note_progress(name); }
    } noted{this, name};
    const gguf::TensorInfo* ti = file_->find_tensor(name);
    if (!ti) {
        if (required)
            throw Error(strprintf("model: %s: required tensor '%s' is missing", file_->path().c_str(), name.c_str()));
        return Tensor{};
    }
    bool ok = (int)shape.size() >= ti->n_dims;
    for (size_t d = 0; ok && d < 4; ++d) ok = ti->ne[d] == (d < shape.size() ? shape[d] : 1);
    if (!ok) {
        std::string want = "[";
        for (size_t d = 0; d < shape.size(); ++d) want += (d ? ", " : "") + std::to_string(shape[d]);
        want += "]";
        throw Error(strprintf("model: %s: tensor '%s' has shape %s, expected %s", file_->path().c_str(), name.c_str(),
                              ti->shape_string().c_str(), want.c_str()));
    }
    const auto& info = dtype_info(ti->type);
    if (!info.supported)
        throw Error(strprintf("model: %s: tensor '%s' has type %s, which is not supported yet", file_->path().c_str(),
                              name.c_str(), info.name));
    Tensor t = make_tensor_view(name, ti->type, ti->ne, (int)shape.size(), ti->data);
    auto dev = device_of_.find(name);
    if (dev != device_of_.end() && prepare_on(t, dev->second)) return t;  // data: still the file's bytes
    if (name != "token_embd.weight") pack(t);
    if (!t.prepared) keep_in_memory(t, name == "token_embd.weight");
    return t;
}

Tensor Model::tensor_f32(const std::string& name, int64_t n, bool required) {
    Tensor t = tensor(name, {n}, required);
    if (t.valid() && t.type != DType::F32)
        throw Error(strprintf("model: %s: tensor '%s' has type %s, expected f32", file_->path().c_str(), name.c_str(),
                              dtype_name(t.type)));
    return t;
}

int64_t Model::need_int(const std::string& k) const {
    auto v = file_->get_int(k);
    if (!v) throw Error(strprintf("model: %s: metadata '%s' is missing", file_->path().c_str(), k.c_str()));
    return *v;
}

void Model::read_common_hparams() {
    const std::string& path = file_->path();
    hp_.arch = *file_->get_str("general.architecture");
    hp_.name = file_->get_str("general.name").value_or("");
    hp_.n_embd = need_int(key("embedding_length"));
    hp_.n_layer = (int)need_int(key("block_count"));
    hp_.n_head = (int)need_int(key("attention.head_count"));
    hp_.n_head_kv = (int)file_->get_int(key("attention.head_count_kv")).value_or(hp_.n_head);
    hp_.n_ff = file_->get_int(key("feed_forward_length")).value_or(0);
    hp_.n_ctx_train = file_->get_int(key("context_length")).value_or(2048);
    hp_.rms_eps = (float)file_->get_float(key("attention.layer_norm_rms_epsilon")).value_or(1e-5);
    auto bad = [&](const char* what, long long v) {
        throw Error(strprintf("model: %s: %s = %lld is invalid", path.c_str(), what, v));
    };
    if (hp_.n_embd <= 0 || hp_.n_embd > (1 << 20)) bad("embedding_length", hp_.n_embd);
    if (hp_.n_layer <= 0 || hp_.n_layer > 4096) bad("block_count", hp_.n_layer);
    if (hp_.n_head <= 0 || hp_.n_head > 4096) bad("attention.head_count", hp_.n_head);
    if (hp_.n_head_kv <= 0 || hp_.n_head % hp_.n_head_kv != 0) bad("attention.head_count_kv", hp_.n_head_kv);
    if (hp_.n_ctx_train <= 0) bad("context_length", hp_.n_ctx_train);
    hp_.head_dim_k = file_->get_int(key("attention.key_length")).value_or(hp_.n_embd / hp_.n_head);
    hp_.head_dim_v = file_->get_int(key("attention.value_length")).value_or(hp_.n_embd / hp_.n_head);
    if (hp_.head_dim_k <= 0 || hp_.head_dim_k > 4096) bad("attention.key_length", hp_.head_dim_k);
    if (hp_.head_dim_v <= 0 || hp_.head_dim_v > 4096) bad("attention.value_length", hp_.head_dim_v);

    hp_.rope.n_rot = (int)file_->get_int(key("rope.dimension_count")).value_or(hp_.head_dim_k);
    if (hp_.rope.n_rot < 0 || hp_.rope.n_rot % 2 || hp_.rope.n_rot > hp_.head_dim_k)
        bad("rope.dimension_count", hp_.rope.n_rot);
    hp_.rope.freq_base = (float)file_->get_float(key("rope.freq_base")).value_or(10000.0);
    if (!(hp_.rope.freq_base > 0)) bad("rope.freq_base", (long long)hp_.rope.freq_base);
    auto scaling = file_->get_str(key("rope.scaling.type")).value_or("none");
    double factor = file_->get_float(key("rope.scaling.factor")).value_or(0.0);
    if (auto lin = file_->get_float(key("rope.scale_linear"))) factor = *lin, scaling = "linear";
    if (scaling == "linear" || scaling == "yarn") {
        if (!(factor > 0)) throw Error(strprintf("model: %s: rope scaling factor %g is invalid", path.c_str(), factor));
        hp_.rope.freq_scale = (float)(1.0 / factor);
    } else if (scaling != "none") {
        throw Error(strprintf("model: %s: rope scaling type '%s' is not supported", path.c_str(), scaling.c_str()));
    }
    hp_.rope.n_ctx_orig =
        (int)file_->get_int(key("rope.scaling.original_context_length")).value_or(hp_.n_ctx_train);
    if (scaling == "yarn") hp_.rope.ext_factor = 1.0f;

    hp_.n_expert = (int)file_->get_int(key("expert_count")).value_or(0);
    hp_.n_expert_used = (int)file_->get_int(key("expert_used_count")).value_or(0);
    if (hp_.n_expert < 0 || hp_.n_expert > 4096) bad("expert_count", hp_.n_expert);
    if (hp_.n_expert > 0 && (hp_.n_expert_used <= 0 || hp_.n_expert_used > hp_.n_expert))
        bad("expert_used_count", hp_.n_expert_used);

    const gguf::TensorInfo* emb = file_->find_tensor("token_embd.weight");
    if (!emb)
        throw Error(strprintf("model: %s: required tensor 'token_embd.weight' is missing", path.c_str()));
    hp_.n_vocab = emb->ne[1];
    if (auto toks = file_->get_array("tokenizer.ggml.tokens", gguf::ValueType::STRING)) {
        if ((int64_t)toks->array_len != hp_.n_vocab)
            throw Error(strprintf("model: %s: tokenizer has %llu tokens but token_embd.weight has %lld rows",
                                  path.c_str(), (unsigned long long)toks->array_len, (long long)hp_.n_vocab));
    }
}

kv::KVLayout Model::kv_layout(DType kv_type) const {
    kv::KVLayout l;
    l.n_layer = hp_.n_layer;
    l.k_dim = (int64_t)hp_.n_head_kv * hp_.head_dim_k;
    l.v_dim = (int64_t)hp_.n_head_kv * hp_.head_dim_v;
    l.type = kv_type;
    return l;
}

ModelStats Model::stats() const {
    ModelStats s;
    for (auto& t : file_->tensors()) {
        s.weight_bytes += t.size;
        s.n_params += t.n_elements();
        // Stacked routed experts are read only for the experts a token uses.
        const bool routed = t.name.find("_exps.") != std::string::npos && t.n_dims == 3 && hp_.n_expert > 0;
        if (t.name == "token_embd.weight") {
            s.active_bytes_per_token += t.size / (size_t)t.ne[1];  // one row is read
            s.n_active_params += t.ne[0];
            continue;
        }
        if (routed) {
            s.active_bytes_per_token += t.size / (size_t)hp_.n_expert * (size_t)hp_.n_expert_used;
            s.n_active_params += t.n_elements() / hp_.n_expert * hp_.n_expert_used;
        } else {
            s.active_bytes_per_token += t.size;
            s.n_active_params += t.n_elements();
        }
    }
    // Tied output embeddings: the whole embedding matrix is read for the logits.
    if (!file_->find_tensor("output.weight"))
        if (auto* e = file_->find_tensor("token_embd.weight")) s.active_bytes_per_token += e->size;
    return s;
}

}  // namespace yiti::model
