#include "vulkan/probe.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace yiti::vk {

namespace {

constexpr uint64_t k_GiB = 1ull << 30;
// mul_mm's tiles need 16.25 KiB; every desktop GPU has at least 32 KiB.
constexpr uint32_t k_min_shared_bytes = 32768;

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
    for (const auto& e : exts)
        if (strcmp(e.extensionName, name) == 0) return true;
    return false;
}

const char* type_name(VkPhysicalDeviceType t) {
    switch (t) {
        case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
            return "discrete";
        case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
            return "integrated";
        case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
            return "virtual";
        case VK_PHYSICAL_DEVICE_TYPE_CPU:
            return "cpu";
        default:
            return "other";
    }
}

}  // namespace

uint64_t env_bytes(const char* name) {
    const char* v = getenv(name);
    if (!v || !*v) return 0;
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = strtoull(v, &end, 10);
    uint64_t mult = 1;
    if (end && *end) {
        const char c = (char)toupper((unsigned char)*end);
        mult = c == 'K' ? 1ull << 10 : c == 'M' ? 1ull << 20 : c == 'G' ? 1ull << 30 : 0;
        if (mult) ++end;
        if (mult && (*end == 'i' || *end == 'I')) ++end;
        if (mult && (*end == 'b' || *end == 'B')) ++end;
    }
    if (!isdigit((unsigned char)v[0]) || errno || mult == 0 || (end && *end) || n == 0 ||
        n > UINT64_MAX / mult)
        throw Error(
            strprintf("%s='%s' is not a byte count (a positive number, optionally with K, M or G)", name, v));
    return n * mult;
}

Limits env_limits() {
    Limits l;
    l.max_storage_range = env_bytes("YITI_VK_MAX_STORAGE_RANGE");
    l.max_alloc = env_bytes("YITI_VK_MAX_ALLOC");
    return l;
}

DeviceDesc describe_device(const Instance& inst, VkPhysicalDevice pd, const Limits& cap) {
    const InstanceFunctions& fi = inst.fn();
    DeviceDesc d;
    VkPhysicalDeviceProperties base{};
    fi.vkGetPhysicalDeviceProperties(pd, &base);
    d.name = base.deviceName;
    d.type = type_name(base.deviceType);
    d.software = base.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    d.api_version = base.apiVersion;
    d.vendor_id = base.vendorID;
    d.device_id = base.deviceID;
    d.max_storage_range = base.limits.maxStorageBufferRange;
    d.max_shared_bytes = base.limits.maxComputeSharedMemorySize;
    d.driver = strprintf("version %u.%u.%u", VK_API_VERSION_MAJOR(base.driverVersion),
                         VK_API_VERSION_MINOR(base.driverVersion), VK_API_VERSION_PATCH(base.driverVersion));

    if (base.apiVersion < VK_API_VERSION_1_1 || inst.api_version() < VK_API_VERSION_1_1) {
        d.unusable = strprintf("Vulkan %u.%u device; yiti needs 1.1", VK_API_VERSION_MAJOR(base.apiVersion),
                               VK_API_VERSION_MINOR(base.apiVersion));
        d.max_buffer_bytes = d.max_alloc = 0;
        return d;
    }
    const uint32_t api = std::min(base.apiVersion, inst.api_version());

    uint32_t n_ext = 0;
    fi.vkEnumerateDeviceExtensionProperties(pd, nullptr, &n_ext, nullptr);
    std::vector<VkExtensionProperties> exts(n_ext);
    if (n_ext) fi.vkEnumerateDeviceExtensionProperties(pd, nullptr, &n_ext, exts.data());
    const bool v12 = api >= VK_API_VERSION_1_2, v13 = api >= VK_API_VERSION_1_3;
    const bool has_driver_props = v12 || has_extension(exts, "VK_KHR_driver_properties");
    const bool has_sg_control = v13 || has_extension(exts, "VK_EXT_subgroup_size_control");
    const bool has_maint4 = v13 || has_extension(exts, "VK_KHR_maintenance4");
    const bool has_dot = v13 || has_extension(exts, "VK_KHR_shader_integer_dot_product");
    const bool has_f16 = v12 || has_extension(exts, "VK_KHR_shader_float16_int8");
    d.coopmat =
        has_extension(exts, "VK_KHR_cooperative_matrix") || has_extension(exts, "VK_NV_cooperative_matrix");

    // Properties: each structure only where the device has its version or extension.
    auto p2 = make<VkPhysicalDeviceProperties2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2);
    auto m3 = make<VkPhysicalDeviceMaintenance3Properties>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES);
    auto sg = make<VkPhysicalDeviceSubgroupProperties>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES);
    auto drv = make<VkPhysicalDeviceDriverProperties>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES);
    auto sgc = make<VkPhysicalDeviceSubgroupSizeControlProperties>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES);
    auto m4 = make<VkPhysicalDeviceMaintenance4Properties>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES);
    auto dotp = make<VkPhysicalDeviceShaderIntegerDotProductProperties>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES);
    void** next = &p2.pNext;
    auto chain = [&next](auto& s) {
        *next = &s;
        next = &s.pNext;
    };
    chain(m3);
    chain(sg);
    if (has_driver_props) chain(drv);
    if (has_sg_control) chain(sgc);
    if (has_maint4) chain(m4);
    if (has_dot) chain(dotp);
    fi.vkGetPhysicalDeviceProperties2(pd, &p2);

    auto f2 = make<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2);
    auto s16 =
        make<VkPhysicalDevice16BitStorageFeatures>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES);
    auto f16 = make<VkPhysicalDeviceShaderFloat16Int8Features>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES);
    auto dotf = make<VkPhysicalDeviceShaderIntegerDotProductFeatures>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES);
    next = &f2.pNext;
    chain(s16);
    if (has_f16) chain(f16);
    if (has_dot) chain(dotf);
    fi.vkGetPhysicalDeviceFeatures2(pd, &f2);

    if (has_driver_props) {
        d.driver = drv.driverName;
        if (drv.driverInfo[0]) d.driver += std::string(" ") + drv.driverInfo;
    }
    d.subgroup_min = d.subgroup_max = sg.subgroupSize;
    if (has_sg_control && sgc.minSubgroupSize) {
        d.subgroup_min = sgc.minSubgroupSize;
        d.subgroup_max = sgc.maxSubgroupSize;
    }
    d.max_buffer_bytes = m3.maxMemoryAllocationSize;
    if (has_maint4) d.max_buffer_bytes = std::min<uint64_t>(d.max_buffer_bytes, m4.maxBufferSize);
    d.fp16 = has_f16 && f16.shaderFloat16;
    d.int8_dot = has_dot && dotf.shaderIntegerDotProduct &&
                 (dotp.integerDotProduct4x8BitPackedSignedAccelerated ||
                  dotp.integerDotProduct4x8BitPackedMixedSignednessAccelerated);

    VkPhysicalDeviceMemoryProperties mem{};
    fi.vkGetPhysicalDeviceMemoryProperties(pd, &mem);
    for (uint32_t i = 0; i < mem.memoryHeapCount; ++i)
        if (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            d.memory_bytes += mem.memoryHeaps[i].size;

    if (cap.max_storage_range) d.max_storage_range = std::min(d.max_storage_range, cap.max_storage_range);
    d.max_alloc = std::min<uint64_t>(k_GiB, d.max_buffer_bytes);
    if (cap.max_alloc) d.max_alloc = std::min(d.max_alloc, cap.max_alloc);

    uint32_t n_fam = 0;
    fi.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_fam, nullptr);
    std::vector<VkQueueFamilyProperties> fams(n_fam);
    if (n_fam) fi.vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_fam, fams.data());
    const bool has_compute = std::any_of(fams.begin(), fams.end(),
                                         [](const auto& f) { return f.queueFlags & VK_QUEUE_COMPUTE_BIT; });
    if (!has_compute)
        d.unusable = "no compute queue";
    else if (!s16.storageBuffer16BitAccess)
        d.unusable = "no 16-bit storage buffer access (storageBuffer16BitAccess)";
    else if (d.max_shared_bytes < k_min_shared_bytes)
        d.unusable = strprintf("%u bytes of compute shared memory; the kernels need %u", d.max_shared_bytes,
                               k_min_shared_bytes);
    return d;
}

std::vector<DeviceDesc> enumerate_devices(std::string* why) {
    std::vector<DeviceDesc> out;
    if (getenv("YITI_VK_DISABLE") && strcmp(getenv("YITI_VK_DISABLE"), "0") != 0) {
        if (why) *why = "YITI_VK_DISABLE is set";
        return out;
    }
    const Limits cap = env_limits();  // throws for a malformed variable: the user's to fix
    const GlobalFunctions* g = loader(why);
    if (!g) return out;
    try {
        Instance inst(*g);
        uint32_t n = 0;
        VkResult r = inst.fn().vkEnumeratePhysicalDevices(inst.handle(), &n, nullptr);
        if (r != VK_SUCCESS && r != VK_INCOMPLETE)
            throw Error(strprintf("vulkan: vkEnumeratePhysicalDevices failed: %s", result_name(r)));
        std::vector<VkPhysicalDevice> pds(n);
        if (n) inst.fn().vkEnumeratePhysicalDevices(inst.handle(), &n, pds.data());
        pds.resize(n);
        for (VkPhysicalDevice pd : pds) out.push_back(describe_device(inst, pd, cap));
        if (out.empty() && why) *why = "the Vulkan loader found no device";
    } catch (const Error& e) {
        // A broken or missing driver means no Vulkan devices, not a failure of the program.
        out.clear();
        if (why) *why = e.what();
    }
    return out;
}

}  // namespace yiti::vk
