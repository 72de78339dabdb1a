// The Vulkan API as yiti uses it: libvulkan.so.1 is opened at run time (never linked), and every
// function is reached through a pointer from vkGetInstanceProcAddr / vkGetDeviceProcAddr. A machine
// without a Vulkan loader or driver simply has no Vulkan devices.
#pragma once
#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>

#include <string>

namespace yiti::vk {

// Functions reached without an instance.
#define YITI_VK_GLOBAL_FUNCTIONS(X) \
    X(vkCreateInstance)             \
    X(vkEnumerateInstanceExtensionProperties)

// Functions of an instance (and of its physical devices).
#define YITI_VK_INSTANCE_FUNCTIONS(X)           \
    X(vkDestroyInstance)                        \
    X(vkEnumeratePhysicalDevices)               \
    X(vkGetPhysicalDeviceProperties)            \
    X(vkGetPhysicalDeviceProperties2)           \
    X(vkGetPhysicalDeviceFeatures2)             \
    X(vkGetPhysicalDeviceMemoryProperties)      \
    X(vkGetPhysicalDeviceQueueFamilyProperties) \
    X(vkEnumerateDeviceExtensionProperties)     \
    X(vkCreateDevice)                           \
    X(vkGetDeviceProcAddr)

// Functions of a device.
#define YITI_VK_DEVICE_FUNCTIONS(X)   \
    X(vkDestroyDevice)                \
    X(vkGetDeviceQueue)               \
    X(vkDeviceWaitIdle)               \
    X(vkAllocateMemory)               \
    X(vkFreeMemory)                   \
    X(vkMapMemory)                    \
    X(vkUnmapMemory)                  \
    X(vkFlushMappedMemoryRanges)      \
    X(vkInvalidateMappedMemoryRanges) \
    X(vkCreateBuffer)                 \
    X(vkDestroyBuffer)                \
    X(vkGetBufferMemoryRequirements)  \
    X(vkBindBufferMemory)             \
    X(vkCreateShaderModule)           \
    X(vkDestroyShaderModule)          \
    X(vkCreateDescriptorSetLayout)    \
    X(vkDestroyDescriptorSetLayout)   \
    X(vkCreatePipelineLayout)         \
    X(vkDestroyPipelineLayout)        \
    X(vkCreateComputePipelines)       \
    X(vkDestroyPipeline)              \
    X(vkCreateDescriptorPool)         \
    X(vkDestroyDescriptorPool)        \
    X(vkResetDescriptorPool)          \
    X(vkAllocateDescriptorSets)       \
    X(vkUpdateDescriptorSets)         \
    X(vkCreateCommandPool)            \
    X(vkDestroyCommandPool)           \
    X(vkResetCommandPool)             \
    X(vkAllocateCommandBuffers)       \
    X(vkBeginCommandBuffer)           \
    X(vkEndCommandBuffer)             \
    X(vkCmdBindPipeline)              \
    X(vkCmdBindDescriptorSets)        \
    X(vkCmdPushConstants)             \
    X(vkCmdDispatch)                  \
    X(vkCmdPipelineBarrier)           \
    X(vkCmdCopyBuffer)                \
    X(vkCmdFillBuffer)                \
    X(vkCreateFence)                  \
    X(vkDestroyFence)                 \
    X(vkResetFences)                  \
    X(vkWaitForFences)                \
    X(vkQueueSubmit)

#define YITI_VK_DECLARE_POINTER(name) PFN_##name name = nullptr;

struct GlobalFunctions {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
    PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion = nullptr;  // null on a Vulkan 1.0 loader
    YITI_VK_GLOBAL_FUNCTIONS(YITI_VK_DECLARE_POINTER)
};

struct InstanceFunctions {
    YITI_VK_INSTANCE_FUNCTIONS(YITI_VK_DECLARE_POINTER)
};

struct DeviceFunctions {
    YITI_VK_DEVICE_FUNCTIONS(YITI_VK_DECLARE_POINTER)
};

// The loader's global functions, or nullptr when libvulkan.so.1 cannot be opened (or lacks
// vkGetInstanceProcAddr); then *why says so. Opened once per process and never closed.
// YITI_VK_LOADER overrides the library's name (tests use it to stand for a machine without one).
const GlobalFunctions* loader(std::string* why = nullptr);

// Resolves every instance / device function; throws Error naming the first missing one.
InstanceFunctions load_instance_functions(const GlobalFunctions& g, VkInstance instance);
DeviceFunctions load_device_functions(const InstanceFunctions& fi, VkDevice device);

// A zeroed Vulkan structure of type T with its sType set.
template <class T>
T make(VkStructureType type) {
    T s{};
    s.sType = type;
    return s;
}

// "VK_ERROR_OUT_OF_DEVICE_MEMORY" style name of a result code.
const char* result_name(VkResult r);

// An instance for compute work: Vulkan 1.1 or newer (the loader's version, up to 1.3), no layers,
// no extensions but portability enumeration where the loader has it. Throws Error on failure.
class Instance {
public:
    explicit Instance(const GlobalFunctions& g);
    ~Instance();
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    VkInstance handle() const { return instance_; }
    uint32_t api_version() const { return api_version_; }
    const InstanceFunctions& fn() const { return fn_; }
    const GlobalFunctions& global() const { return g_; }

private:
    const GlobalFunctions& g_;
    VkInstance instance_ = VK_NULL_HANDLE;
    uint32_t api_version_ = 0;
    InstanceFunctions fn_;
};

}  // namespace yiti::vk
