// yiti info: architecture, hyperparameters, tensor types and sizes, memory needed.
#include <cinttypes>
#include <cstdio>
#include <map>
#include <optional>

#include "args.h"
#include "commands.h"
#include "core/error.h"
#include "model/model.h"
#include "runtime/placement.h"

namespace yiti::cli {

static std::string human(double bytes) { return runtime::human_bytes(bytes); }

int cmd_info(int argc, char** argv) {
    std::string path;
    bool tensors = false, metadata = false, placement = false;
    int64_t n_ctx = 0;
    PlacementFlags pf;
    Args a("info", "-m MODEL [--tensors] [--metadata] [-c N] [--placement [-ngl N] [-ot REGEX=DEVICE]... [--device LIST]]");
    a.str("-m,--model", &path, "GGUF model file", "FILE");
    a.flag("--tensors", &tensors, "list every tensor");
    a.flag("--metadata", &metadata, "list every metadata key");
    a.flag("--placement", &placement, "show which device each tensor goes to with these flags, and the bytes per device");
    add_placement_flags(a, &pf);
    a.integer("-c,--ctx-size", &n_ctx, "context size for the memory estimate (default: min(training context, 4096))", 1,
              1 << 24);
    a.examples("  yiti info -m model.gguf\n  yiti info -m model.gguf --tensors\n"
               "  yiti info -m model.gguf --placement -ngl 99 -ot \"_exps=cpu\"\n");
    if (!a.parse(argc, argv)) return a.exit_code();
    if (path.empty()) throw Error("missing -m MODEL");

    auto m = model::Model::load(path);
    const auto& hp = m->hparams();
    const auto& f = m->file();
    const auto st = m->stats();
    // The placement is planned before anything is printed, so that bad flags fail at once.
    std::optional<runtime::PlacementPlan> plan;
    if (placement) {
        runtime::PlacementOptions po;
        po.n_gpu_layers = pf.n_gpu_layers;
        for (auto& o : pf.overrides) po.overrides.push_back(runtime::parse_tensor_override(o));
        if (!pf.devices.empty()) po.devices = runtime::parse_device_list(pf.devices);
        plan = runtime::plan_placement(f, hp.n_layer, po, runtime::list_devices());
        for (auto& w : plan->warnings) fprintf(stderr, "yiti info: warning: %s\n", w.c_str());
    }
    printf("file          %s (GGUF v%u, %s)\n", path.c_str(), f.version(), human((double)f.file_size()).c_str());
    printf("name          %s\n", hp.name.c_str());
    printf("architecture  %s\n", hp.arch.c_str());
    printf("parameters    %.3f M (active per token %.3f M)\n", st.n_params / 1e6, st.n_active_params / 1e6);
    printf("vocabulary    %" PRId64 "\n", hp.n_vocab);
    printf("context       %" PRId64 " (training)\n", hp.n_ctx_train);
    printf("layers        %d\n", hp.n_layer);
    printf("embedding     %" PRId64 "\n", hp.n_embd);
    printf("heads         %d (kv heads %d), head dim k %" PRId64 " v %" PRId64 "\n", hp.n_head, hp.n_head_kv,
           hp.head_dim_k, hp.head_dim_v);
    if (hp.n_ff) printf("feed-forward  %" PRId64 "\n", hp.n_ff);
    printf("rope          %s, %d dims, base %g, freq scale %g%s\n",
           hp.rope.style == cpu::RopeStyle::Neox ? "neox" : "normal", hp.rope.n_rot, hp.rope.freq_base,
           hp.rope.freq_scale, hp.rope.ext_factor != 0 ? " (YaRN)" : "");
    if (hp.n_expert)
        printf("experts       %d, %d used per token, %d shared, expert ff %" PRId64 ", %s gating\n", hp.n_expert,
               hp.n_expert_used, hp.n_expert_shared, hp.n_ff_exp,
               hp.expert_gating == model::ExpertGating::Sigmoid ? "sigmoid" : "softmax");
    if (hp.kv_lora_rank)
        printf("MLA           q_lora_rank %" PRId64 ", kv_lora_rank %" PRId64 "\n", hp.q_lora_rank, hp.kv_lora_rank);

    std::map<std::string, std::pair<int, size_t>> by_type;
    for (auto& t : f.tensors()) {
        auto& e = by_type[dtype_name(t.type)];
        e.first++;
        e.second += t.size;
    }
    printf("tensor types ");
    for (auto& [name, e] : by_type) printf(" %s: %d (%s);", name.c_str(), e.first, human((double)e.second).c_str());
    printf("\n");

    const int64_t ctx = n_ctx > 0 ? n_ctx : std::min<int64_t>(hp.n_ctx_train, 4096);
    const DType kv_type = m->preferred_kv_type();
    const auto kl = m->kv_layout(kv_type);
    const size_t kv_tok = (size_t)kl.n_layer * (row_size(kv_type, kl.k_dim) + row_size(kv_type, kl.v_dim));
    printf("kv cache      %" PRId64 " + %" PRId64 " values per token per layer; %s per token (%s); %s for %" PRId64
           " tokens\n",
           kl.k_dim, kl.v_dim, human((double)kv_tok).c_str(), dtype_name(kv_type), human((double)kv_tok * ctx).c_str(),
           ctx);
    printf("weights       %s; read per generated token: %s\n", human((double)st.weight_bytes).c_str(),
           human((double)st.active_bytes_per_token).c_str());
    printf("loaded        %s in memory of its own (weights repacked for this CPU, small tensors and the embeddings\n"
           "              copied); the rest is read from the file's mapping\n",
           human((double)m->memory_bytes()).c_str());
    printf("memory needed %s (weights + kv cache for %" PRId64 " tokens)\n",
           human((double)st.weight_bytes + (double)kv_tok * ctx).c_str(), ctx);

    if (plan) {
        printf("\nplacement (%s):\n", plan->summary().c_str());
        for (auto& t : plan->tensors)
            printf("  %-40s %-8s %-10s %s%s\n", t.name.c_str(), dtype_name(t.type), human((double)t.bytes).c_str(),
                   t.device.c_str(), t.overridden ? " (-ot)" : "");
        printf("bytes per device:\n");
        for (auto& [id, b] : plan->device_bytes) printf("  %-10s %s\n", id.c_str(), human((double)b).c_str());
    }
    if (metadata) {
        printf("\nmetadata:\n");
        for (auto& [k, v] : f.kvs()) printf("  %-48s %s\n", k.c_str(), v.to_string().c_str());
    }
    if (tensors) {
        printf("\ntensors:\n");
        // Where each lives once loaded: repacked for the CPU kernels, copied into the model's memory
        // (small tensors, the embeddings), read from the file's mapping, or not read at all.
        for (auto& t : f.tensors()) {
            const auto pl = m->placement(t.name);
            std::string where = pl.repacked ? "repacked" : "";
            if (pl.copied) where += where.empty() ? "in memory" : ", in memory";
            if (pl.mapped) where += where.empty() ? "mapped" : ", mapped";
            if (where.empty()) where = "unused";
            printf("  %-40s %-8s %-24s %-10s %s\n", t.name.c_str(), dtype_name(t.type), t.shape_string().c_str(),
                   human((double)t.size).c_str(), where.c_str());
        }
    }
    return 0;
}

}  // namespace yiti::cli
