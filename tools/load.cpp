#include "load.h"

#include <unistd.h>

#include <cstdio>

namespace yiti::cli {

model::LoadOptions load_options(const PlacementFlags& pf) {
    model::LoadOptions o;
    o.progress = isatty(2);
    o.placement.n_gpu_layers = pf.n_gpu_layers;
    for (auto& ot : pf.overrides) o.placement.overrides.push_back(runtime::parse_tensor_override(ot));
    if (!pf.devices.empty()) o.placement.devices = runtime::parse_device_list(pf.devices);
    return o;
}

std::shared_ptr<model::Model> load_model(const std::string& command, const std::string& path, const PlacementFlags& pf) {
    std::shared_ptr<model::Model> m = model::Model::load(path, load_options(pf));
    for (auto& w : m->load_warnings()) fprintf(stderr, "yiti %s: warning: %s\n", command.c_str(), w.c_str());
    fprintf(stderr, "yiti %s: model placed: %s\n", command.c_str(), m->plan().summary().c_str());
    return m;
}

}  // namespace yiti::cli
