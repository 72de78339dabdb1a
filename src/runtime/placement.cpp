#include "runtime/placement.h"

#include <algorithm>
#include <cstdlib>
// GCC 12's std::regex trips -Wmaybe-uninitialized inside libstdc++ (std::function in the NFA's
// states) when built with the sanitizers; a known false positive, not in this file's code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>

#include "core/error.h"
#include "gguf/gguf.h"

namespace yiti::runtime {

namespace {

// "blk.12.attn_q.weight" -> 12; -1 for tensors outside the repeating layers.
int layer_of(const std::string& name) {
    if (name.rfind("blk.", 0) != 0) return -1;
    size_t end = name.find('.', 4);
    if (end == std::string::npos || end == 4) return -1;
    int n = 0;
    for (size_t i = 4; i < end; ++i) {
        if (name[i] < '0' || name[i] > '9') return -1;
        n = n * 10 + (name[i] - '0');
        if (n > 1 << 20) return -1;
    }
    return n;
}

// The output head and its norm go with the last layers.
bool is_output(const std::string& name) { return name.rfind("output", 0) == 0; }

std::string known_ids(const std::vector<DeviceInfo>& devices) {
    std::string s;
    for (auto& d : devices) s += (s.empty() ? "" : ", ") + d.id;
    return s;
}

const DeviceInfo& lookup(const std::vector<DeviceInfo>& devices, const std::string& id, const char* what) {
    for (auto& d : devices) {
        if (d.id != id) continue;
        if (!d.unusable.empty())
            throw Error(strprintf("%s names the device '%s' (%s), which yiti cannot compute on: %s", what, id.c_str(),
                                  d.name.c_str(), d.unusable.c_str()));
        return d;
    }
    throw Error(strprintf("%s names the device '%s', which does not exist here (devices: %s; see `yiti devices`)", what,
                          id.c_str(), known_ids(devices).c_str()));
}

}  // namespace

std::string human_bytes(double bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
    return strprintf(u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
}

const std::string& PlacementPlan::device_of(const std::string& tensor) const {
    static const std::string cpu = "cpu";
    for (auto& t : tensors)
        if (t.name == tensor) return t.device;
    return cpu;
}

std::string PlacementPlan::summary() const {
    std::string s;
    for (auto& [id, b] : device_bytes) s += (s.empty() ? "" : ", ") + id + " " + human_bytes((double)b);
    return s;
}

void PlacementPlan::move(const std::string& tensor, const std::string& device) {
    for (auto& t : tensors) {
        if (t.name != tensor || t.device == device) continue;
        for (auto& [id, b] : device_bytes)
            if (id == t.device) b -= t.bytes;
        auto it = std::find_if(device_bytes.begin(), device_bytes.end(), [&](auto& d) { return d.first == device; });
        if (it == device_bytes.end()) it = device_bytes.insert(device == "cpu" ? device_bytes.begin() : device_bytes.end(), {device, 0});
        it->second += t.bytes;
        t.device = device;
    }
    std::erase_if(device_bytes, [](auto& d) { return d.second == 0 && d.first != "cpu"; });
}

std::pair<std::string, std::string> parse_tensor_override(const std::string& arg) {
    const size_t eq = arg.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
        throw Error(strprintf("-ot/--override-tensor takes REGEX=DEVICE (e.g. \"_exps=cpu\"), got '%s'", arg.c_str()));
    return {arg.substr(0, eq), arg.substr(eq + 1)};
}

std::vector<std::string> parse_device_list(const std::string& arg) {
    std::vector<std::string> out;
    size_t pos = 0;
    for (;;) {
        size_t e = arg.find(',', pos);
        std::string item = arg.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
        while (!item.empty() && item.front() == ' ') item.erase(0, 1);
        while (!item.empty() && item.back() == ' ') item.pop_back();
        if (item.empty()) throw Error(strprintf("--device takes a comma-separated list of device ids, got '%s'", arg.c_str()));
        out.push_back(item);
        if (e == std::string::npos) break;
        pos = e + 1;
    }
    return out;
}

PlacementPlan plan_placement(const gguf::File& file, int n_layer, const PlacementOptions& opt,
                             const std::vector<DeviceInfo>& devices) {
    PlacementPlan plan;
    // The GPUs to use.
    std::vector<const DeviceInfo*> gpus;
    if (!opt.devices.empty()) {
        for (auto& id : opt.devices) {
            const DeviceInfo& d = lookup(devices, id, "--device");
            if (d.device.kind == DeviceKind::CPU) continue;
            if (std::find(gpus.begin(), gpus.end(), &d) == gpus.end()) gpus.push_back(&d);
        }
    } else {
        for (auto& d : devices)
            if (d.device.kind != DeviceKind::CPU && !d.software && d.unusable.empty()) gpus.push_back(&d);
    }
    // The overrides: devices checked and regexes compiled before anything is placed.
    struct Rule {
        std::string text, device;
        std::regex re;
        int matched = 0;
    };
    std::vector<Rule> rules;
    for (auto& [re, dev] : opt.overrides) {
        lookup(devices, dev, strprintf("-ot '%s=%s'", re.c_str(), dev.c_str()).c_str());
        Rule r;
        r.text = re;
        r.device = dev;
        try {
            r.re = std::regex(re, std::regex::ECMAScript | std::regex::optimize);
        } catch (const std::regex_error& e) {
            throw Error(strprintf("-ot '%s=%s': the regex does not compile (%s)", re.c_str(), dev.c_str(), e.what()));
        }
        rules.push_back(std::move(r));
    }

    // Layers on the GPUs: the last n_gpu of them, in contiguous runs per GPU by memory share.
    const int n_gpu = gpus.empty() ? 0 : std::clamp(opt.n_gpu_layers, 0, n_layer);
    if (opt.n_gpu_layers > 0 && gpus.empty())
        plan.warnings.push_back(strprintf(
            "-ngl %d: there is no GPU to use%s; everything stays on the CPU", opt.n_gpu_layers,
            std::any_of(devices.begin(), devices.end(), [](const DeviceInfo& d) { return d.software; })
                ? " (a software Vulkan device is used only when named with --device)"
                : ""));
    std::vector<std::string> layer_dev((size_t)std::max(n_layer, 0), "cpu");
    if (n_gpu > 0) {
        double total = 0;
        for (auto* g : gpus) total += (double)std::max<uint64_t>(g->memory_bytes, 1);
        const int first = n_layer - n_gpu;
        int start = first;
        double acc = 0;
        for (size_t gi = 0; gi < gpus.size(); ++gi) {
            acc += (double)std::max<uint64_t>(gpus[gi]->memory_bytes, 1);
            const int end = gi + 1 == gpus.size() ? n_layer : first + (int)(n_gpu * acc / total + 0.5);
            for (int il = start; il < end; ++il) layer_dev[(size_t)il] = gpus[gi]->id;
            start = std::max(start, end);
        }
    }
    const std::string output_dev = n_gpu > 0 ? layer_dev[(size_t)n_layer - 1] : "cpu";

    for (auto& t : file.tensors()) {
        PlacedTensor p;
        p.name = t.name;
        p.type = t.type;
        p.bytes = t.size;
        p.layer = layer_of(t.name);
        p.device = "cpu";
        if (p.layer >= 0 && p.layer < n_layer)
            p.device = layer_dev[(size_t)p.layer];
        else if (is_output(t.name))
            p.device = output_dev;
        for (auto& r : rules) {
            if (std::regex_search(t.name, r.re)) {
                r.matched++;
                p.device = r.device;
                p.overridden = true;
                break;
            }
        }
        plan.tensors.push_back(std::move(p));
    }
    // Tied output embeddings on a GPU: the output product needs its own copy of token_embd there.
    if (!file.find_tensor("output.weight") && output_dev != "cpu") {
        if (const gguf::TensorInfo* emb = file.find_tensor("token_embd.weight")) {
            PlacedTensor p;
            p.name = "output.weight (tied: a copy of token_embd.weight)";
            p.type = emb->type;
            p.bytes = emb->size;
            p.device = output_dev;
            for (const PlacedTensor& t : plan.tensors)
                if (t.name == "output_norm.weight") p.device = t.device;
            plan.tensors.push_back(std::move(p));
        }
    }
    for (auto& r : rules)
        if (r.matched == 0)
            throw Error(strprintf("-ot '%s=%s': the regex matches no tensor of this model (see `yiti info --tensors`)",
                                  r.text.c_str(), r.device.c_str()));

    // Bytes per device, cpu first, then in the order of the device list.
    for (auto& d : devices) {
        uint64_t b = 0;
        for (auto& p : plan.tensors)
            if (p.device == d.id) b += p.bytes;
        if (b > 0 || d.device.kind == DeviceKind::CPU) plan.device_bytes.emplace_back(d.id, b);
    }
    for (auto& [id, b] : plan.device_bytes) {
        const DeviceInfo* dp = nullptr;
        for (auto& d : devices)
            if (d.id == id) dp = &d;
        const DeviceInfo& d = *dp;
        if (d.device.kind == DeviceKind::CPU || d.memory_bytes == 0) continue;
        if (b > d.memory_bytes)
            throw Error(strprintf("the weights placed on %s (%s) need %s (%llu bytes), but it has %s (%llu bytes); "
                                  "place fewer layers there (-ngl) or move tensors elsewhere (-ot)",
                                  id.c_str(), d.name.c_str(), human_bytes((double)b).c_str(), (unsigned long long)b,
                                  human_bytes((double)d.memory_bytes).c_str(), (unsigned long long)d.memory_bytes));
    }
    return plan;
}

}  // namespace yiti::runtime
