// What the Vulkan devices of this machine are and can do, as `yiti devices` shows them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "vulkan/vk_api.h"

namespace yiti::vk {

// Limits a context works within: the device's, lowered by ContextOptions or the environment
// (YITI_VK_MAX_STORAGE_RANGE, YITI_VK_MAX_ALLOC: bytes, with an optional K/M/G suffix) so that tests
// can run the split paths on any device.
struct Limits {
    uint64_t max_storage_range = 0;  // largest storage-buffer binding (maxStorageBufferRange)
    uint64_t max_alloc = 0;          // largest block of device memory: min(1 GiB, maxMemoryAllocationSize,
                                     // maxBufferSize)
};

// Reads a byte count from the environment variable `name`: 0 when unset or empty; throws Error
// naming the variable for anything but a positive number with an optional K, M or G suffix.
uint64_t env_bytes(const char* name);
// The caps the environment sets (0 where unset).
Limits env_limits();

struct DeviceDesc {
    std::string name;    // deviceName
    std::string type;    // "discrete", "integrated", "virtual", "cpu", "other"
    std::string driver;  // driver name and version
    uint32_t api_version = 0;
    uint32_t vendor_id = 0, device_id = 0;
    uint64_t memory_bytes = 0;       // device-local heaps
    uint64_t max_buffer_bytes = 0;   // min(maxMemoryAllocationSize, maxBufferSize)
    uint64_t max_storage_range = 0;  // maxStorageBufferRange, lowered by YITI_VK_MAX_STORAGE_RANGE
    uint64_t max_alloc = 0;          // the block size contexts allocate (Limits::max_alloc)
    uint32_t max_shared_bytes = 0;   // maxComputeSharedMemorySize
    uint32_t subgroup_min = 0, subgroup_max = 0;
    bool fp16 = false;      // shaderFloat16
    bool int8_dot = false;  // accelerated 4x8-bit packed integer dot products
    bool coopmat = false;   // VK_KHR_cooperative_matrix or VK_NV_cooperative_matrix
    bool software = false;  // a CPU-type device (lavapipe, SwiftShader)
    std::string unusable;   // why yiti cannot compute on it ("" when it can)
};

// Every Vulkan device in enumeration order, with the caps of env_limits(); empty (with *why set)
// when there is no loader, no driver, the instance cannot be created or YITI_VK_DISABLE is set
// (to anything but 0). Never throws for a missing or broken driver; throws Error for a malformed
// YITI_VK_* variable.
std::vector<DeviceDesc> enumerate_devices(std::string* why = nullptr);

// The description of one physical device of an instance (used by enumerate_devices and Context),
// its limits lowered to the nonzero caps in `cap`.
DeviceDesc describe_device(const Instance& inst, VkPhysicalDevice pd, const Limits& cap);

}  // namespace yiti::vk
