// The devices yiti can compute on: the CPU, then every Vulkan device in enumeration order. Names
// ("cpu", "vulkan0", ...) are what --device and -ot take and what `yiti devices` prints.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace yiti::runtime {

struct DeviceInfo {
    Device device;                   // kind (CPU / Vulkan) + index
    std::string id;                  // "cpu", "vulkan0", "vulkan1", ...
    std::string name;                // CPU model name / GPU name
    std::string type;                // "cpu", "discrete", "integrated", "virtual", "other"
    std::string driver;              // driver name + version ("" for the CPU)
    uint64_t memory_bytes = 0;       // device-local memory (CPU: MemAvailable)
    uint64_t max_buffer_bytes = 0;   // largest single allocation/buffer
    uint64_t max_storage_range = 0;  // maxStorageBufferRange (YITI_VK_MAX_STORAGE_RANGE lowers it)
    uint32_t subgroup_min = 0, subgroup_max = 0;
    bool fp16 = false, int8_dot = false, coopmat = false;
    bool software = false;  // a CPU-type Vulkan device (lavapipe): never chosen automatically,
                            // only with --device
    std::string unusable;   // why yiti cannot compute on it ("" when it can)
};

// cpu first, then every Vulkan device in enumeration order (none when the binary was built without
// Vulkan, the machine has no Vulkan loader or driver, or YITI_VK_DISABLE=1). Enumerated once per
// process. Never throws for a missing driver; throws Error for a malformed YITI_VK_* variable.
const std::vector<DeviceInfo>& list_devices();

// The device named `id` ("cpu", "vulkan0"): throws Error naming the known ids when unknown.
const DeviceInfo& find_device(const std::string& id);

// Why there are no Vulkan devices ("" when there are some): no loader, no driver, not built in.
const std::string& vulkan_unavailable_reason();

}  // namespace yiti::runtime
