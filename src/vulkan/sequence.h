// A recording of device work (dispatches, copies, small uploads and read-backs) into one command
// buffer, submitted at once and waited for with one fence: a forward pass records all its ops and
// synchronizes with the host once.
//
// Barriers: every command declares the byte ranges it reads and writes (through its bindings);
// a memory barrier goes in front of a command only when it reads or writes bytes that a command
// since the last barrier wrote, or writes bytes that one read. Independent dispatches (the Q, K and
// V products of a layer) run without barriers between them.
//
// A sequence is reusable: run() (or submit() + wait()) leaves it empty, ready to record again.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "vulkan/context.h"

namespace yiti::vk {

enum class Access { Read, Write, ReadWrite };

// A view bound to a storage-buffer binding. The binding starts at the view's offset rounded down to
// the context's binding alignment: the shader finds the view `shift` bytes into its binding.
struct Binding {
    VkDescriptorBufferInfo info{};
    uint32_t shift = 0;
    Access access = Access::Read;
    // The shift in elements of `elem_bytes` (the view's offset must be a multiple of it).
    uint32_t shift_elems(uint32_t elem_bytes) const { return shift / elem_bytes; }
};

class Sequence {
public:
    explicit Sequence(Context& ctx);
    ~Sequence();  // waits for work submitted and not waited for
    Sequence(const Sequence&) = delete;
    Sequence& operator=(const Sequence&) = delete;

    Context& context() const { return ctx_; }

    // A binding of view v; the bound range (v plus its shift) must not exceed the context's
    // maxStorageBufferRange (asserted: ops split their work to fit).
    Binding bind(const BufferView& v, Access a) const;

    // One dispatch of groups (gx, gy, gz) of pipeline p with the given bindings (binding i of the
    // list to binding i of set 0) and push constants.
    void dispatch(const Pipeline& p, std::initializer_list<Binding> bindings, const void* push,
                  uint32_t push_bytes, uint32_t gx, uint32_t gy = 1, uint32_t gz = 1);
    // Splits n_groups (> 0) workgroups into a grid (gx, gy) with gx within the device's limit;
    // shaders find their index with group_linear() (common.glsl) and skip those >= n_groups.
    void grid(uint64_t n_groups, uint32_t* gx, uint32_t* gy) const;

    // Copies n bytes from host memory into dst: staged now (src may be reused at once), copied on
    // the device in order with the commands around it.
    void upload(const BufferView& dst, const void* src, uint64_t n);
    // Copies n bytes of src into host memory at dst when the work completes (by wait()).
    void download(const BufferView& src, void* dst, uint64_t n);
    // Fills dst (size a multiple of 4) with a 32-bit pattern.
    void fill(const BufferView& dst, uint32_t value);

    bool empty() const { return !recording_; }
    uint32_t n_dispatches() const { return n_dispatches_; }

    void submit();  // ends and submits the recording (no-op when empty)
    void wait();    // waits for the submitted work, delivers read-backs, resets for reuse
    void run() {
        submit();
        wait();
    }

    // YITI_VK_PROFILE=1: every dispatch is submitted and waited for on its own and its time added
    // to a per-pipeline table printed at exit (a developer's tool: it serializes the device).
    static bool profiling();

private:
    static void profile_add(const std::string& name, double seconds);
    struct Range {
        VkBuffer buffer;
        uint64_t begin, end;
        bool write;
    };
    struct Readback {
        size_t staging;  // index into staging_
        uint64_t offset;
        void* dst;
        uint64_t n;
    };
    void begin_if_needed();
    // Emits a barrier when `ranges` conflict with commands since the last one; records them.
    void track(const Range* ranges, size_t n);
    // Staging space of n bytes (n <= chunk limit) for this recording.
    // Returns the chunk's index and the offset in it.
    std::pair<size_t, uint64_t> staging(uint64_t n);
    void reset_state();  // after a completed or failed submission
    VkDescriptorSet descriptor_set(const Pipeline& p);
    uint64_t staging_chunk_limit() const;

    Context& ctx_;
    VkCommandPool pool_ = VK_NULL_HANDLE;
    VkCommandBuffer cmd_ = VK_NULL_HANDLE;
    VkFence fence_ = VK_NULL_HANDLE;
    bool recording_ = false, submitted_ = false;
    uint32_t n_dispatches_ = 0;
    std::vector<Range> pending_;  // accesses since the last barrier
    std::vector<VkDescriptorPool> desc_pools_;
    size_t desc_pool_cur_ = 0;
    std::vector<HostBuffer> staging_;
    size_t staging_cur_ = 0;
    uint64_t staging_off_ = 0;
    std::vector<Readback> readbacks_;
};

}  // namespace yiti::vk
