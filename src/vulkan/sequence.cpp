#include "vulkan/sequence.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace yiti::vk {

namespace {

constexpr uint64_t k_MiB = 1ull << 20;
constexpr uint64_t k_staging_min_bytes = 4 * k_MiB;
constexpr uint64_t k_staging_max_bytes = 64 * k_MiB;
constexpr uint64_t k_staging_align = 64;
constexpr uint32_t k_sets_per_pool = 256;
constexpr uint32_t k_buffers_per_set = 8;  // descriptors per pool: k_sets_per_pool * this

// Everything a compute dispatch or a copy may do, on both sides of a barrier.
constexpr VkPipelineStageFlags k_stages =
    VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
constexpr VkAccessFlags k_writes = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
constexpr VkAccessFlags k_accesses = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                     VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;

}  // namespace

Sequence::Sequence(Context& ctx) : ctx_(ctx) {
    const auto& f = ctx_.fn();
    auto cpi = make<VkCommandPoolCreateInfo>(VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO);
    cpi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
    cpi.queueFamilyIndex = ctx_.queue_family();
    ctx_.check(f.vkCreateCommandPool(ctx_.device(), &cpi, nullptr, &pool_), "vkCreateCommandPool");
    auto cai = make<VkCommandBufferAllocateInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO);
    cai.commandPool = pool_;
    cai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    cai.commandBufferCount = 1;
    auto fci = make<VkFenceCreateInfo>(VK_STRUCTURE_TYPE_FENCE_CREATE_INFO);
    VkResult r = f.vkAllocateCommandBuffers(ctx_.device(), &cai, &cmd_);
    if (r == VK_SUCCESS) r = f.vkCreateFence(ctx_.device(), &fci, nullptr, &fence_);
    if (r != VK_SUCCESS) {
        f.vkDestroyCommandPool(ctx_.device(), pool_, nullptr);
        ctx_.fail(cmd_ ? "vkCreateFence" : "vkAllocateCommandBuffers", r);
    }
}

Sequence::~Sequence() {
    const auto& f = ctx_.fn();
    if (submitted_) {
        // Never leave the device working on memory about to be freed; errors cannot leave a destructor.
        f.vkWaitForFences(ctx_.device(), 1, &fence_, VK_TRUE, UINT64_MAX);
    }
    staging_.clear();
    for (VkDescriptorPool p : desc_pools_) f.vkDestroyDescriptorPool(ctx_.device(), p, nullptr);
    f.vkDestroyFence(ctx_.device(), fence_, nullptr);
    f.vkDestroyCommandPool(ctx_.device(), pool_, nullptr);  // frees the command buffer
}

void Sequence::begin_if_needed() {
    if (recording_) return;
    YITI_ASSERT(!submitted_ && "wait() for the submitted work before recording again");
    auto bi = make<VkCommandBufferBeginInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO);
    bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    ctx_.check(ctx_.fn().vkBeginCommandBuffer(cmd_, &bi), "vkBeginCommandBuffer");
    recording_ = true;
}

Binding Sequence::bind(const BufferView& v, Access a) const {
    YITI_ASSERT(v.buffer != VK_NULL_HANDLE && v.size > 0);
    const uint64_t align = ctx_.binding_alignment();
    const uint64_t base = v.offset / align * align;
    Binding b;
    b.shift = (uint32_t)(v.offset - base);
    b.info.buffer = v.buffer;
    b.info.offset = base;
    b.info.range = v.size + b.shift;
    b.access = a;
    if (b.info.range > ctx_.limits().max_storage_range)
        throw Error(strprintf("%s: a binding of %llu bytes exceeds the storage-buffer range of %llu bytes",
                              ctx_.name().c_str(), (unsigned long long)b.info.range,
                              (unsigned long long)ctx_.limits().max_storage_range));
    return b;
}

void Sequence::grid(uint64_t n_groups, uint32_t* gx, uint32_t* gy) const {
    YITI_ASSERT(n_groups > 0);
    const uint64_t mx = ctx_.max_group_count_x();
    *gx = (uint32_t)std::min<uint64_t>(n_groups, mx);
    const uint64_t y = (n_groups + *gx - 1) / *gx;
    YITI_ASSERT(y <= 65535);
    *gy = (uint32_t)y;
}

void Sequence::track(const Range* ranges, size_t n) {
    bool conflict = false;
    for (size_t i = 0; i < n && !conflict; ++i) {
        for (const Range& p : pending_) {
            if (p.buffer == ranges[i].buffer && p.begin < ranges[i].end && ranges[i].begin < p.end &&
                (p.write || ranges[i].write)) {
                conflict = true;
                break;
            }
        }
    }
    if (conflict) {
        auto mb = make<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
        mb.srcAccessMask = k_writes;
        mb.dstAccessMask = k_accesses;
        ctx_.fn().vkCmdPipelineBarrier(cmd_, k_stages, k_stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
        ++ctx_.stats().barriers;
        pending_.clear();
    }
    pending_.insert(pending_.end(), ranges, ranges + n);
}

VkDescriptorSet Sequence::descriptor_set(const Pipeline& p) {
    const auto& f = ctx_.fn();
    for (;;) {
        if (desc_pool_cur_ == desc_pools_.size()) {
            VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, k_sets_per_pool * k_buffers_per_set};
            auto dpi = make<VkDescriptorPoolCreateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO);
            dpi.maxSets = k_sets_per_pool;
            dpi.poolSizeCount = 1;
            dpi.pPoolSizes = &ps;
            VkDescriptorPool pool = VK_NULL_HANDLE;
            ctx_.check(f.vkCreateDescriptorPool(ctx_.device(), &dpi, nullptr, &pool),
                       "vkCreateDescriptorPool");
            desc_pools_.push_back(pool);
        }
        auto ai = make<VkDescriptorSetAllocateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO);
        ai.descriptorPool = desc_pools_[desc_pool_cur_];
        ai.descriptorSetCount = 1;
        ai.pSetLayouts = &p.set_layout;
        VkDescriptorSet set = VK_NULL_HANDLE;
        VkResult r = f.vkAllocateDescriptorSets(ctx_.device(), &ai, &set);
        if (r == VK_SUCCESS) return set;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
            ctx_.fail("vkAllocateDescriptorSets", r, p.name);
        ++desc_pool_cur_;  // this pool is full: the next one (created above when missing)
    }
}

void Sequence::dispatch(const Pipeline& p, std::initializer_list<Binding> bindings, const void* push,
                        uint32_t push_bytes, uint32_t gx, uint32_t gy, uint32_t gz) {
    YITI_ASSERT(bindings.size() == p.n_buffers && push_bytes == p.push_bytes);
    YITI_ASSERT(bindings.size() <= k_buffers_per_set);
    begin_if_needed();
    Range ranges[k_buffers_per_set];
    VkWriteDescriptorSet writes[k_buffers_per_set];
    VkDescriptorSet set = descriptor_set(p);
    size_t i = 0;
    for (const Binding& b : bindings) {
        ranges[i] = {b.info.buffer, b.info.offset + b.shift, b.info.offset + b.info.range,
                     b.access != Access::Read};
        writes[i] = make<VkWriteDescriptorSet>(VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET);
        writes[i].dstSet = set;
        writes[i].dstBinding = (uint32_t)i;
        writes[i].descriptorCount = 1;
        writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        writes[i].pBufferInfo = &b.info;
        ++i;
    }
    track(ranges, i);
    const auto& f = ctx_.fn();
    f.vkUpdateDescriptorSets(ctx_.device(), (uint32_t)i, writes, 0, nullptr);
    f.vkCmdBindPipeline(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
    f.vkCmdBindDescriptorSets(cmd_, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
    if (push_bytes) f.vkCmdPushConstants(cmd_, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
    f.vkCmdDispatch(cmd_, gx, gy, gz);
    ++n_dispatches_;
    ++ctx_.stats().dispatches;
    if (profiling()) {  // each dispatch on its own, timed from the host (a developer's view)
        const auto t0 = std::chrono::steady_clock::now();
        run();
        profile_add(p.name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
}

bool Sequence::profiling() {
    static const bool on = [] {
        const char* e = getenv("YITI_VK_PROFILE");
        return e && *e && strcmp(e, "0") != 0;
    }();
    return on;
}

void Sequence::profile_add(const std::string& name, double seconds) {
    struct Profile {
        std::mutex mu;
        std::map<std::string, std::pair<uint64_t, double>> by_name;
        ~Profile() {
            std::vector<std::pair<double, std::string>> v;
            double total = 0;
            for (auto& [n, cs] : by_name) {
                v.emplace_back(cs.second, n);
                total += cs.second;
            }
            std::sort(v.rbegin(), v.rend());
            fprintf(stderr, "YITI_VK_PROFILE: %.3f s in dispatches (each submitted and waited for alone)\n", total);
            for (auto& [sec, n] : v)
                fprintf(stderr, "  %-40s %8llu dispatches %9.3f s %5.1f%%\n", n.c_str(),
                        (unsigned long long)by_name[n].first, sec, total > 0 ? 100 * sec / total : 0.0);
        }
    };
    static Profile prof;
    std::lock_guard<std::mutex> lk(prof.mu);
    auto& e = prof.by_name[name];
    e.first++;
    e.second += seconds;
}

uint64_t Sequence::staging_chunk_limit() const {
    return std::min(k_staging_max_bytes, ctx_.limits().max_alloc);
}

std::pair<size_t, uint64_t> Sequence::staging(uint64_t n) {
    YITI_ASSERT(n <= staging_chunk_limit());
    while (staging_cur_ < staging_.size()) {
        HostBuffer& h = staging_[staging_cur_];
        const uint64_t off = (staging_off_ + k_staging_align - 1) / k_staging_align * k_staging_align;
        if (off + n <= h.size()) {
            staging_off_ = off + n;
            return {staging_cur_, off};
        }
        ++staging_cur_;
        staging_off_ = 0;
    }
    const uint64_t size = std::min(staging_chunk_limit(), std::max(n, k_staging_min_bytes));
    staging_.push_back(ctx_.alloc_host(size, "a command sequence"));
    staging_cur_ = staging_.size() - 1;
    staging_off_ = n;
    return {staging_cur_, 0};
}

void Sequence::upload(const BufferView& dst, const void* src, uint64_t n) {
    YITI_ASSERT(n <= dst.size);
    if (n == 0) return;
    begin_if_needed();
    const Range r{dst.buffer, dst.offset, dst.offset + n, true};
    track(&r, 1);
    const uint64_t limit = staging_chunk_limit();
    for (uint64_t off = 0; off < n; off += limit) {
        const uint64_t m = std::min(limit, n - off);
        auto [hi, hoff] = staging(m);
        memcpy(staging_[hi].data() + hoff, (const uint8_t*)src + off, m);
        VkBufferCopy c{hoff, dst.offset + off, m};
        ctx_.fn().vkCmdCopyBuffer(cmd_, staging_[hi].buffer(), dst.buffer, 1, &c);
    }
    ctx_.stats().h2d_bytes += n;
}

void Sequence::download(const BufferView& src, void* dst, uint64_t n) {
    YITI_ASSERT(n <= src.size);
    if (n == 0) return;
    begin_if_needed();
    const Range r{src.buffer, src.offset, src.offset + n, false};
    track(&r, 1);
    const uint64_t limit = staging_chunk_limit();
    for (uint64_t off = 0; off < n; off += limit) {
        const uint64_t m = std::min(limit, n - off);
        auto [hi, hoff] = staging(m);
        VkBufferCopy c{src.offset + off, hoff, m};
        ctx_.fn().vkCmdCopyBuffer(cmd_, src.buffer, staging_[hi].buffer(), 1, &c);
        readbacks_.push_back({hi, hoff, (uint8_t*)dst + off, m});
    }
    ctx_.stats().d2h_bytes += n;
}

void Sequence::fill(const BufferView& dst, uint32_t value) {
    YITI_ASSERT(dst.size % 4 == 0 && dst.offset % 4 == 0);
    if (dst.size == 0) return;
    begin_if_needed();
    const Range r{dst.buffer, dst.offset, dst.offset + dst.size, true};
    track(&r, 1);
    ctx_.fn().vkCmdFillBuffer(cmd_, dst.buffer, dst.offset, dst.size, value);
}

void Sequence::submit() {
    if (!recording_) return;
    const auto& f = ctx_.fn();
    if (!readbacks_.empty()) {
        // The copies into staging must be visible to the host once the fence signals.
        auto mb = make<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
        mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
        mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
        f.vkCmdPipelineBarrier(cmd_, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                               nullptr, 0, nullptr);
    }
    recording_ = false;
    VkResult r = f.vkEndCommandBuffer(cmd_);
    if (r != VK_SUCCESS) {
        reset_state();
        ctx_.fail("vkEndCommandBuffer", r);
    }
    auto si = make<VkSubmitInfo>(VK_STRUCTURE_TYPE_SUBMIT_INFO);
    si.commandBufferCount = 1;
    si.pCommandBuffers = &cmd_;
    r = f.vkQueueSubmit(ctx_.queue(), 1, &si, fence_);
    if (r != VK_SUCCESS) {
        const uint32_t n = n_dispatches_;
        reset_state();
        ctx_.fail("vkQueueSubmit", r, strprintf("%u dispatches", n));
    }
    submitted_ = true;
    ++ctx_.stats().submits;
}

void Sequence::wait() {
    if (!submitted_) return;
    const auto& f = ctx_.fn();
    submitted_ = false;
    VkResult r = f.vkWaitForFences(ctx_.device(), 1, &fence_, VK_TRUE, UINT64_MAX);
    ++ctx_.stats().syncs;
    if (r == VK_SUCCESS)
        for (const Readback& rb : readbacks_) memcpy(rb.dst, staging_[rb.staging].data() + rb.offset, rb.n);
    reset_state();
    ctx_.check(r, "vkWaitForFences");
}

void Sequence::reset_state() {
    const auto& f = ctx_.fn();
    readbacks_.clear();
    f.vkResetFences(ctx_.device(), 1, &fence_);
    for (VkDescriptorPool p : desc_pools_) f.vkResetDescriptorPool(ctx_.device(), p, 0);
    desc_pool_cur_ = 0;
    staging_cur_ = 0;
    staging_off_ = 0;
    pending_.clear();
    n_dispatches_ = 0;
}

}  // namespace yiti::vk
