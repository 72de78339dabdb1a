#include "runtime/devices.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"
#ifdef YITI_VULKAN
#include "vulkan/probe.h"
#endif

namespace yiti::runtime {

namespace {

// The first "key : value" line of a /proc file whose key is `key`; "" when none.
std::string proc_field(const char* path, const std::string& key) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string k = line.substr(0, colon);
        while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
        if (k != key) continue;
        size_t v = colon + 1;
        while (v < line.size() && (line[v] == ' ' || line[v] == '\t')) ++v;
        return line.substr(v);
    }
    return "";
}

DeviceInfo cpu_device() {
    DeviceInfo d;
    d.device = Device{DeviceKind::CPU, 0};
    d.id = "cpu";
    d.type = "cpu";
    d.name = proc_field("/proc/cpuinfo", "model name");
    if (d.name.empty()) d.name = "CPU";
    // "MemAvailable:   123456 kB"
    const std::string avail = proc_field("/proc/meminfo", "MemAvailable");
    d.memory_bytes = avail.empty() ? 0 : std::strtoull(avail.c_str(), nullptr, 10) * 1024;
    d.max_buffer_bytes = d.memory_bytes;
    d.max_storage_range = d.memory_bytes;
    return d;
}

struct Registry {
    std::vector<DeviceInfo> devices;
    std::string vulkan_why;
};

Registry enumerate() {
    Registry r;
    r.devices.push_back(cpu_device());
#ifdef YITI_VULKAN
    const std::vector<vk::DeviceDesc> descs = vk::enumerate_devices(&r.vulkan_why);
    for (size_t i = 0; i < descs.size(); ++i) {
        const vk::DeviceDesc& v = descs[i];
        DeviceInfo d;
        d.device = Device{DeviceKind::Vulkan, (int)i};
        d.id = "vulkan" + std::to_string(i);
        d.name = v.name;
        d.type = v.type;
        d.driver = v.driver;
        d.memory_bytes = v.memory_bytes;
        d.max_buffer_bytes = v.max_buffer_bytes;
        d.max_storage_range = v.max_storage_range;
        d.subgroup_min = v.subgroup_min;
        d.subgroup_max = v.subgroup_max;
        d.fp16 = v.fp16;
        d.int8_dot = v.int8_dot;
        d.coopmat = v.coopmat;
        d.software = v.software;
        d.unusable = v.unusable;
        r.devices.push_back(std::move(d));
    }
#else
    r.vulkan_why = "this build of yiti has no Vulkan backend (configure with the Vulkan headers and glslc)";
#endif
    return r;
}

const Registry& registry() {
    static const Registry r = enumerate();
    return r;
}

}  // namespace

const std::vector<DeviceInfo>& list_devices() {
    return registry().devices;
}

const std::string& vulkan_unavailable_reason() {
    return registry().vulkan_why;
}

const DeviceInfo& find_device(const std::string& id) {
    const auto& devs = list_devices();
    std::string known;
    for (const auto& d : devs) {
        if (d.id == id) return d;
        known += (known.empty() ? "" : ", ") + d.id;
    }
    throw Error(strprintf("unknown device '%s' (this machine has: %s)", id.c_str(), known.c_str()));
}

}  // namespace yiti::runtime
