#include "vulkan/vk_api.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace yiti::vk {

namespace {

struct LoaderState {
    GlobalFunctions fn;
    bool ok = false;
    std::string why;
};

LoaderState open_loader() {
    LoaderState s;
    const char* env = getenv("YITI_VK_LOADER");
    const char* lib_name = env && *env ? env : "libvulkan.so.1";
    // RTLD_LOCAL: the loader's symbols stay out of the global namespace (drivers it loads bind
    // to it directly). The handle is kept for the life of the process.
    void* lib = dlopen(lib_name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char* e = dlerror();
        s.why = strprintf("cannot open the Vulkan loader %s (%s)", lib_name, e ? e : "unknown error");
        return s;
    }
    s.fn.vkGetInstanceProcAddr = (PFN_vkGetInstanceProcAddr)dlsym(lib, "vkGetInstanceProcAddr");
    if (!s.fn.vkGetInstanceProcAddr) {
        s.why = strprintf("the Vulkan loader %s has no vkGetInstanceProcAddr", lib_name);
        return s;
    }
    auto gipa = s.fn.vkGetInstanceProcAddr;
    s.fn.vkEnumerateInstanceVersion =
        (PFN_vkEnumerateInstanceVersion)gipa(VK_NULL_HANDLE, "vkEnumerateInstanceVersion");
#define YITI_VK_LOAD_GLOBAL(name)                                         \
    s.fn.name = (PFN_##name)gipa(VK_NULL_HANDLE, #name);                  \
    if (!s.fn.name) {                                                     \
        s.why = strprintf("the Vulkan loader %s lacks " #name, lib_name); \
        return s;                                                         \
    }
    YITI_VK_GLOBAL_FUNCTIONS(YITI_VK_LOAD_GLOBAL)
#undef YITI_VK_LOAD_GLOBAL
    s.ok = true;
    return s;
}

}  // namespace

const GlobalFunctions* loader(std::string* why) {
    static const LoaderState state = open_loader();
    if (!state.ok) {
        if (why) *why = state.why;
        return nullptr;
    }
    return &state.fn;
}

InstanceFunctions load_instance_functions(const GlobalFunctions& g, VkInstance instance) {
    InstanceFunctions f;
#define YITI_VK_LOAD_INSTANCE(name)                                \
    f.name = (PFN_##name)g.vkGetInstanceProcAddr(instance, #name); \
    if (!f.name) throw Error("vulkan: the instance has no " #name " (a Vulkan 1.1 loader is needed)");
    YITI_VK_INSTANCE_FUNCTIONS(YITI_VK_LOAD_INSTANCE)
#undef YITI_VK_LOAD_INSTANCE
    return f;
}

DeviceFunctions load_device_functions(const InstanceFunctions& fi, VkDevice device) {
    DeviceFunctions f;
#define YITI_VK_LOAD_DEVICE(name)                               \
    f.name = (PFN_##name)fi.vkGetDeviceProcAddr(device, #name); \
    if (!f.name) throw Error("vulkan: the device has no " #name);
    YITI_VK_DEVICE_FUNCTIONS(YITI_VK_LOAD_DEVICE)
#undef YITI_VK_LOAD_DEVICE
    return f;
}

const char* result_name(VkResult r) {
    switch (r) {
#define YITI_VK_CASE(x) \
    case x:             \
        return #x;
        YITI_VK_CASE(VK_SUCCESS)
        YITI_VK_CASE(VK_NOT_READY)
        YITI_VK_CASE(VK_TIMEOUT)
        YITI_VK_CASE(VK_INCOMPLETE)
        YITI_VK_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
        YITI_VK_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
        YITI_VK_CASE(VK_ERROR_INITIALIZATION_FAILED)
        YITI_VK_CASE(VK_ERROR_DEVICE_LOST)
        YITI_VK_CASE(VK_ERROR_MEMORY_MAP_FAILED)
        YITI_VK_CASE(VK_ERROR_LAYER_NOT_PRESENT)
        YITI_VK_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
        YITI_VK_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
        YITI_VK_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
        YITI_VK_CASE(VK_ERROR_TOO_MANY_OBJECTS)
        YITI_VK_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
        YITI_VK_CASE(VK_ERROR_FRAGMENTED_POOL)
        YITI_VK_CASE(VK_ERROR_UNKNOWN)
        YITI_VK_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
        YITI_VK_CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE)
        YITI_VK_CASE(VK_ERROR_FRAGMENTATION)
        YITI_VK_CASE(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
        YITI_VK_CASE(VK_ERROR_INVALID_SHADER_NV)
#undef YITI_VK_CASE
        default:
            return "VK_ERROR_(unknown)";
    }
}

Instance::Instance(const GlobalFunctions& g) : g_(g) {
    uint32_t loader_version = VK_API_VERSION_1_0;
    if (g.vkEnumerateInstanceVersion) g.vkEnumerateInstanceVersion(&loader_version);
    if (loader_version < VK_API_VERSION_1_1)
        throw Error(strprintf("vulkan: the loader supports Vulkan %u.%u; yiti needs 1.1 or newer",
                              VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version)));
    api_version_ = loader_version < VK_API_VERSION_1_3 ? loader_version : VK_API_VERSION_1_3;

    // Portability enumeration lists devices that are not fully conformant (MoltenVK-style); with it
    // the flag below must be set. Nothing else is needed for compute.
    uint32_t n_ext = 0;
    g.vkEnumerateInstanceExtensionProperties(nullptr, &n_ext, nullptr);
    std::vector<VkExtensionProperties> exts(n_ext);
    if (n_ext) g.vkEnumerateInstanceExtensionProperties(nullptr, &n_ext, exts.data());
    std::vector<const char*> enable;
    VkInstanceCreateFlags flags = 0;
    for (const auto& e : exts) {
        if (strcmp(e.extensionName, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME) == 0) {
            enable.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
            flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
        }
    }

    VkApplicationInfo app{};
    app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
    app.pApplicationName = "yiti";
    app.applicationVersion = VK_MAKE_API_VERSION(0, 0, 1, 0);
    app.pEngineName = "yiti";
    app.engineVersion = VK_MAKE_API_VERSION(0, 0, 1, 0);
    app.apiVersion = api_version_;
    VkInstanceCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
    ci.flags = flags;
    ci.pApplicationInfo = &app;
    ci.enabledExtensionCount = (uint32_t)enable.size();
    ci.ppEnabledExtensionNames = enable.data();
    VkResult r = g.vkCreateInstance(&ci, nullptr, &instance_);
    if (r != VK_SUCCESS) throw Error(strprintf("vulkan: vkCreateInstance failed: %s", result_name(r)));
    try {
        fn_ = load_instance_functions(g, instance_);
    } catch (...) {
        auto destroy = (PFN_vkDestroyInstance)g.vkGetInstanceProcAddr(instance_, "vkDestroyInstance");
        if (destroy) destroy(instance_, nullptr);
        throw;
    }
}

Instance::~Instance() {
    if (instance_ != VK_NULL_HANDLE) fn_.vkDestroyInstance(instance_, nullptr);
}

}  // namespace yiti::vk
