// One Vulkan device opened for compute: its queue, device-local memory sub-allocated from blocks,
// host-visible staging, and the compute pipelines built from the embedded SPIR-V. Work is recorded
// into a Sequence (sequence.h) and submitted once.
//
// Not thread-safe: one thread drives a context (and its sequences) at a time.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vulkan/probe.h"
#include "vulkan/vk_api.h"

namespace yiti::vk {

class Context;
class Sequence;

// Bytes [offset, offset + size) of a device VkBuffer: what bindings and copies take.
struct BufferView {
    VkBuffer buffer = VK_NULL_HANDLE;
    uint64_t offset = 0;
    uint64_t size = 0;
    // Bytes [off, off + n) of this view (asserted to lie within it).
    BufferView sub(uint64_t off, uint64_t n) const;
};

// A sub-allocation of device-local memory; given back when destroyed. Move-only; must not outlive
// its context.
class Buffer {
public:
    Buffer() = default;
    ~Buffer() { release(); }
    Buffer(Buffer&& o) noexcept { *this = std::move(o); }
    Buffer& operator=(Buffer&& o) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;

    explicit operator bool() const { return ctx_ != nullptr; }
    uint64_t size() const { return size_; }
    BufferView view() const { return {buffer_, offset_, size_}; }
    BufferView view(uint64_t off, uint64_t n) const { return view().sub(off, n); }

private:
    friend class Context;
    void release();
    Context* ctx_ = nullptr;
    uint32_t block_ = 0;
    VkBuffer buffer_ = VK_NULL_HANDLE;
    uint64_t offset_ = 0, size_ = 0;
};

// Host-visible, host-coherent memory mapped for the life of the object (staging). Move-only.
class HostBuffer {
public:
    HostBuffer() = default;
    ~HostBuffer() { release(); }
    HostBuffer(HostBuffer&& o) noexcept { *this = std::move(o); }
    HostBuffer& operator=(HostBuffer&& o) noexcept;
    HostBuffer(const HostBuffer&) = delete;
    HostBuffer& operator=(const HostBuffer&) = delete;

    VkBuffer buffer() const { return buffer_; }
    uint8_t* data() const { return data_; }
    uint64_t size() const { return size_; }

private:
    friend class Context;
    void release();
    Context* ctx_ = nullptr;
    VkBuffer buffer_ = VK_NULL_HANDLE;
    VkDeviceMemory memory_ = VK_NULL_HANDLE;
    uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
};

struct ContextOptions {
    // Nonzero fields lower the device's limits (tests use this to run the split paths); zero
    // fields take YITI_VK_MAX_STORAGE_RANGE / YITI_VK_MAX_ALLOC when set.
    Limits cap;
};

// Counters since the context was created; callers take differences (per token, per pass).
struct Stats {
    uint64_t submits = 0;  // vkQueueSubmit calls
    uint64_t syncs = 0;    // host waits for the device (fence waits)
    uint64_t dispatches = 0;
    uint64_t barriers = 0;   // pipeline barriers between dependent commands
    uint64_t h2d_bytes = 0;  // host to device copies
    uint64_t d2h_bytes = 0;  // device to host copies
};

// A compute pipeline: `shader` (a variant name of src/vulkan/shaders) with n_buffers storage
// buffers at bindings 0 .. n_buffers-1 of set 0, push_bytes of push constants and the 32-bit
// specialization constants spec[i] at constant_id i.
struct PipelineDesc {
    std::string_view shader;
    uint32_t n_buffers = 0;
    uint32_t push_bytes = 0;
    std::vector<uint32_t> spec;
};

struct Pipeline {
    std::string name;  // shader[spec,...]
    VkPipeline pipeline = VK_NULL_HANDLE;
    VkPipelineLayout layout = VK_NULL_HANDLE;
    VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
    uint32_t n_buffers = 0;
    uint32_t push_bytes = 0;
};

class Context {
public:
    // Opens Vulkan device `index` (numbered as enumerate_devices() numbers them). Throws Error
    // naming the device and the failing call, or why the device cannot be used.
    static std::unique_ptr<Context> create(int index, const ContextOptions& opt = {});
    ~Context();
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    const DeviceDesc& desc() const { return desc_; }
    // "vulkan0 (llvmpipe (LLVM 15.0.6, 256 bits))": how errors name the device.
    const std::string& name() const { return name_; }
    const Limits& limits() const { return limits_; }
    // Bindings start at multiples of this (minStorageBufferOffsetAlignment, at least 16).
    uint64_t binding_alignment() const { return binding_align_; }
    uint32_t max_group_count_x() const { return max_groups_x_; }
    // Whether shaders may use the 4x8-bit packed integer dot products (OpSDot, SPV_KHR_integer_dot_product):
    // the device has shaderIntegerDotProduct (Vulkan 1.3 or VK_KHR_shader_integer_dot_product) and
    // the context enabled it. Whether they are fast there is desc().int8_dot (lavapipe has them,
    // not accelerated).
    bool int8_dot() const { return int8_dot_; }

    // Device-local memory of `bytes` (at most limits().max_alloc); `what` names it in errors.
    Buffer alloc(uint64_t bytes, const char* what);
    // Host-visible staging memory of `bytes`.
    HostBuffer alloc_host(uint64_t bytes, const char* what);
    uint64_t device_bytes_allocated() const;  // blocks held
    uint64_t device_bytes_in_use() const;     // sub-allocations live

    // Synchronous copies through staging (load time, tests); one submit and wait per staging chunk.
    void upload(const BufferView& dst, const void* src, uint64_t n);
    void download(const BufferView& src, void* dst, uint64_t n);

    // The pipeline for desc, built on first use and cached by shader and specialization.
    const Pipeline& pipeline(const PipelineDesc& desc);

    Stats& stats() { return stats_; }
    const Stats& stats() const { return stats_; }

    // Throws Error("<device>: <call> failed: <result> (<detail>)").
    [[noreturn]] void fail(const char* call, VkResult r, const std::string& detail = "") const;
    void check(VkResult r, const char* call, const std::string& detail = "") const {
        if (r != VK_SUCCESS) fail(call, r, detail);
    }

    const DeviceFunctions& fn() const { return fd_; }
    VkDevice device() const { return device_; }
    VkQueue queue() const { return queue_; }
    uint32_t queue_family() const { return queue_family_; }

private:
    Context() = default;
    friend class Buffer;
    friend class HostBuffer;

    struct Block {
        VkDeviceMemory memory = VK_NULL_HANDLE;
        VkBuffer buffer = VK_NULL_HANDLE;
        uint64_t size = 0;
        uint64_t used = 0;
        std::map<uint64_t, uint64_t> free;  // offset -> size, coalesced
    };
    void free_range(uint32_t block, uint64_t offset, uint64_t size);
    uint32_t find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags want,
                              VkMemoryPropertyFlags avoid) const;
    void new_block(uint64_t min_bytes, const char* what);

    std::unique_ptr<Instance> instance_;
    VkPhysicalDevice physical_ = VK_NULL_HANDLE;
    DeviceDesc desc_;
    std::string name_;
    Limits limits_;
    uint64_t binding_align_ = 16;
    uint32_t max_groups_x_ = 65535;
    bool int8_dot_ = false;
    VkPhysicalDeviceMemoryProperties mem_props_{};
    VkDevice device_ = VK_NULL_HANDLE;
    DeviceFunctions fd_;
    VkQueue queue_ = VK_NULL_HANDLE;
    uint32_t queue_family_ = 0;

    std::vector<Block> blocks_;  // a block given back leaves an empty slot (memory == null)
    uint64_t live_buffers_ = 0;
    uint64_t live_host_buffers_ = 0;

    std::map<std::string, VkShaderModule, std::less<>> modules_;
    std::map<std::string, std::unique_ptr<Pipeline>, std::less<>> pipelines_;

    std::unique_ptr<Sequence> transfer_;  // for upload() / download()
    Stats stats_;
};

}  // namespace yiti::vk
