#include "vulkan/context.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "vulkan/sequence.h"
#include "vulkan/shaders.h"

namespace yiti::vk {

namespace {

constexpr uint64_t k_MiB = 1ull << 20;
constexpr uint64_t k_first_block_bytes = 32 * k_MiB;  // blocks double from here up to the limit
constexpr uint64_t k_transfer_chunk_bytes = 64 * k_MiB;

uint64_t round_up(uint64_t n, uint64_t a) {
    return (n + a - 1) / a * a;
}

std::string human_bytes(uint64_t n) {
    if (n >= (1ull << 30)) return strprintf("%.2f GiB", n / double(1ull << 30));
    if (n >= k_MiB) return strprintf("%.1f MiB", n / double(k_MiB));
    return strprintf("%llu bytes", (unsigned long long)n);
}

}  // namespace

// ------------------------------------------------------------------ views and buffers

BufferView BufferView::sub(uint64_t off, uint64_t n) const {
    YITI_ASSERT(off <= size && n <= size - off);
    return {buffer, offset + off, n};
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
    if (this != &o) {
        release();
        ctx_ = o.ctx_;
        block_ = o.block_;
        buffer_ = o.buffer_;
        offset_ = o.offset_;
        size_ = o.size_;
        o.ctx_ = nullptr;
        o.buffer_ = VK_NULL_HANDLE;
        o.size_ = 0;
    }
    return *this;
}

void Buffer::release() {
    if (!ctx_) return;
    ctx_->free_range(block_, offset_, size_);
    ctx_ = nullptr;
    buffer_ = VK_NULL_HANDLE;
    size_ = 0;
}

HostBuffer& HostBuffer::operator=(HostBuffer&& o) noexcept {
    if (this != &o) {
        release();
        ctx_ = o.ctx_;
        buffer_ = o.buffer_;
        memory_ = o.memory_;
        data_ = o.data_;
        size_ = o.size_;
        o.ctx_ = nullptr;
        o.buffer_ = VK_NULL_HANDLE;
        o.memory_ = VK_NULL_HANDLE;
        o.data_ = nullptr;
        o.size_ = 0;
    }
    return *this;
}

void HostBuffer::release() {
    if (!ctx_) return;
    const auto& f = ctx_->fn();
    f.vkDestroyBuffer(ctx_->device(), buffer_, nullptr);
    f.vkFreeMemory(ctx_->device(), memory_, nullptr);  // unmaps
    --ctx_->live_host_buffers_;
    ctx_ = nullptr;
}

// ------------------------------------------------------------------ the context

std::unique_ptr<Context> Context::create(int index, const ContextOptions& opt) {
    std::string why;
    const GlobalFunctions* g = loader(&why);
    const std::string id = strprintf("vulkan%d", index);
    if (!g) throw Error(strprintf("%s: no Vulkan: %s", id.c_str(), why.c_str()));
    Limits cap = env_limits();
    if (opt.cap.max_storage_range) cap.max_storage_range = opt.cap.max_storage_range;
    if (opt.cap.max_alloc) cap.max_alloc = opt.cap.max_alloc;

    std::unique_ptr<Context> c(new Context());
    c->instance_ = std::make_unique<Instance>(*g);
    const InstanceFunctions& fi = c->instance_->fn();
    uint32_t n = 0;
    VkResult r = fi.vkEnumeratePhysicalDevices(c->instance_->handle(), &n, nullptr);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE)
        throw Error(strprintf("%s: vkEnumeratePhysicalDevices failed: %s", id.c_str(), result_name(r)));
    std::vector<VkPhysicalDevice> pds(n);
    if (n) fi.vkEnumeratePhysicalDevices(c->instance_->handle(), &n, pds.data());
    if (index < 0 || (uint32_t)index >= n)
        throw Error(strprintf("no Vulkan device %s (this machine has %u)", id.c_str(), n));
    c->physical_ = pds[index];
    c->desc_ = describe_device(*c->instance_, c->physical_, cap);
    c->name_ = strprintf("%s (%s)", id.c_str(), c->desc_.name.c_str());
    if (!c->desc_.unusable.empty())
        throw Error(strprintf("%s cannot be used: %s", c->name_.c_str(), c->desc_.unusable.c_str()));
    c->limits_.max_storage_range = c->desc_.max_storage_range;
    c->limits_.max_alloc = c->desc_.max_alloc;

    VkPhysicalDeviceProperties props{};
    fi.vkGetPhysicalDeviceProperties(c->physical_, &props);
    c->binding_align_ = std::max<uint64_t>(16, props.limits.minStorageBufferOffsetAlignment);
    c->max_groups_x_ = std::min<uint32_t>(props.limits.maxComputeWorkGroupCount[0], 65535);
    fi.vkGetPhysicalDeviceMemoryProperties(c->physical_, &c->mem_props_);

    // One compute queue, from a compute-only family where there is one (NVIDIA, AMD).
    uint32_t n_fam = 0;
    fi.vkGetPhysicalDeviceQueueFamilyProperties(c->physical_, &n_fam, nullptr);
    std::vector<VkQueueFamilyProperties> fams(n_fam);
    fi.vkGetPhysicalDeviceQueueFamilyProperties(c->physical_, &n_fam, fams.data());
    int fam = -1;
    for (uint32_t i = 0; i < n_fam && fam < 0; ++i)
        if ((fams[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(fams[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            fam = (int)i;
    for (uint32_t i = 0; i < n_fam && fam < 0; ++i)
        if (fams[i].queueFlags & VK_QUEUE_COMPUTE_BIT) fam = (int)i;
    YITI_ASSERT(fam >= 0);  // describe_device marks a device without one unusable
    c->queue_family_ = (uint32_t)fam;

    const float priority = 1.0f;
    auto qci = make<VkDeviceQueueCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO);
    qci.queueFamilyIndex = c->queue_family_;
    qci.queueCount = 1;
    qci.pQueuePriorities = &priority;
    auto s16 =
        make<VkPhysicalDevice16BitStorageFeatures>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES);
    s16.storageBuffer16BitAccess = VK_TRUE;
    auto f2 = make<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2);
    f2.pNext = &s16;
    // Packed integer dot products (the int8 products, ops_int8.h): enabled wherever the device has
    // them, core in Vulkan 1.3, else through VK_KHR_shader_integer_dot_product.
    std::vector<const char*> extensions;
    auto dotf = make<VkPhysicalDeviceShaderIntegerDotProductFeatures>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES);
    {
        const uint32_t api = std::min(props.apiVersion, c->instance_->api_version());
        uint32_t n_ext = 0;
        fi.vkEnumerateDeviceExtensionProperties(c->physical_, nullptr, &n_ext, nullptr);
        std::vector<VkExtensionProperties> exts(n_ext);
        if (n_ext) fi.vkEnumerateDeviceExtensionProperties(c->physical_, nullptr, &n_ext, exts.data());
        exts.resize(n_ext);
        const char* dot_ext = "VK_KHR_shader_integer_dot_product";
        const bool dot_core = api >= VK_API_VERSION_1_3;
        const bool dot_listed = std::any_of(exts.begin(), exts.end(), [&](const VkExtensionProperties& e) {
            return strcmp(e.extensionName, dot_ext) == 0;
        });
        if (dot_core || dot_listed) {
            auto q = make<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2);
            q.pNext = &dotf;
            fi.vkGetPhysicalDeviceFeatures2(c->physical_, &q);
            dotf.pNext = nullptr;
            if (dotf.shaderIntegerDotProduct) {
                c->int8_dot_ = true;
                dotf.shaderIntegerDotProduct = VK_TRUE;
                s16.pNext = &dotf;
                if (!dot_core) extensions.push_back(dot_ext);
            }
        }
    }
    auto dci = make<VkDeviceCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO);
    dci.pNext = &f2;
    dci.queueCreateInfoCount = 1;
    dci.pQueueCreateInfos = &qci;
    dci.enabledExtensionCount = (uint32_t)extensions.size();
    dci.ppEnabledExtensionNames = extensions.empty() ? nullptr : extensions.data();
    r = fi.vkCreateDevice(c->physical_, &dci, nullptr, &c->device_);
    if (r != VK_SUCCESS) {
        c->device_ = VK_NULL_HANDLE;
        c->fail("vkCreateDevice", r);
    }
    c->fd_ = load_device_functions(fi, c->device_);
    c->fd_.vkGetDeviceQueue(c->device_, c->queue_family_, 0, &c->queue_);
    c->transfer_ = std::make_unique<Sequence>(*c);
    return c;
}

Context::~Context() {
    if (device_ == VK_NULL_HANDLE) return;
    if (!fd_.vkDestroyDevice) {  // create() failed loading the device's functions
        auto destroy = (PFN_vkDestroyDevice)instance_->fn().vkGetDeviceProcAddr(device_, "vkDestroyDevice");
        if (destroy) destroy(device_, nullptr);
        return;
    }
    transfer_.reset();
    fd_.vkDeviceWaitIdle(device_);
    for (auto& [key, p] : pipelines_) {
        fd_.vkDestroyPipeline(device_, p->pipeline, nullptr);
        fd_.vkDestroyPipelineLayout(device_, p->layout, nullptr);
        fd_.vkDestroyDescriptorSetLayout(device_, p->set_layout, nullptr);
    }
    for (auto& [name, m] : modules_) fd_.vkDestroyShaderModule(device_, m, nullptr);
    // Buffers must not outlive their context (they would free into a destroyed device).
    YITI_ASSERT(live_buffers_ == 0 && live_host_buffers_ == 0);
    for (auto& b : blocks_) {
        if (b.memory == VK_NULL_HANDLE) continue;
        fd_.vkDestroyBuffer(device_, b.buffer, nullptr);
        fd_.vkFreeMemory(device_, b.memory, nullptr);
    }
    fd_.vkDestroyDevice(device_, nullptr);
}

void Context::fail(const char* call, VkResult r, const std::string& detail) const {
    throw Error(strprintf("%s: %s failed: %s%s", name_.c_str(), call, result_name(r),
                          detail.empty() ? "" : (" (" + detail + ")").c_str()));
}

uint32_t Context::find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags want,
                                   VkMemoryPropertyFlags avoid) const {
    for (uint32_t i = 0; i < mem_props_.memoryTypeCount; ++i) {
        const VkMemoryPropertyFlags f = mem_props_.memoryTypes[i].propertyFlags;
        if ((type_bits & (1u << i)) && (f & want) == want && !(f & avoid)) return i;
    }
    return UINT32_MAX;
}

// ------------------------------------------------------------------ device memory

void Context::new_block(uint64_t min_bytes, const char* what) {
    uint64_t held = 0;
    for (const auto& b : blocks_) held += b.size;
    // Blocks grow with the memory in use: small programs (tests) take little, big weights whole blocks.
    const uint64_t size = std::min(limits_.max_alloc, std::max({min_bytes, k_first_block_bytes, held}));
    const std::string detail = strprintf("a block of %s for '%s'; %s held", human_bytes(size).c_str(), what,
                                         human_bytes(held).c_str());
    Block b;
    b.size = size;
    auto bci = make<VkBufferCreateInfo>(VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO);
    bci.size = size;
    bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    check(fd_.vkCreateBuffer(device_, &bci, nullptr, &b.buffer), "vkCreateBuffer", detail);
    VkMemoryRequirements req{};
    fd_.vkGetBufferMemoryRequirements(device_, b.buffer, &req);
    uint32_t type = find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    if (type == UINT32_MAX) type = find_memory_type(req.memoryTypeBits, 0, 0);
    auto mai = make<VkMemoryAllocateInfo>(VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO);
    mai.allocationSize = req.size;
    mai.memoryTypeIndex = type;
    VkResult r = type == UINT32_MAX ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                                    : fd_.vkAllocateMemory(device_, &mai, nullptr, &b.memory);
    if (r == VK_SUCCESS) r = fd_.vkBindBufferMemory(device_, b.buffer, b.memory, 0);
    if (r != VK_SUCCESS) {
        fd_.vkDestroyBuffer(device_, b.buffer, nullptr);
        if (b.memory != VK_NULL_HANDLE) fd_.vkFreeMemory(device_, b.memory, nullptr);
        fail("vkAllocateMemory", r, detail);
    }
    b.free[0] = size;
    for (auto& slot : blocks_) {
        if (slot.memory == VK_NULL_HANDLE) {
            slot = std::move(b);
            return;
        }
    }
    blocks_.push_back(std::move(b));
}

Buffer Context::alloc(uint64_t bytes, const char* what) {
    const uint64_t align = std::max<uint64_t>(binding_align_, 64);
    const uint64_t need = round_up(std::max<uint64_t>(bytes, 1), align);
    if (need > limits_.max_alloc)
        throw Error(strprintf("%s: '%s' needs %s in one buffer, more than the largest block (%s)",
                              name_.c_str(), what, human_bytes(bytes).c_str(),
                              human_bytes(limits_.max_alloc).c_str()));
    for (int attempt = 0; attempt < 2; ++attempt) {
        for (uint32_t bi = 0; bi < blocks_.size(); ++bi) {
            Block& b = blocks_[bi];
            if (b.memory == VK_NULL_HANDLE || b.size - b.used < need) continue;
            for (auto it = b.free.begin(); it != b.free.end(); ++it) {
                if (it->second < need) continue;
                const uint64_t off = it->first, left = it->second - need;
                b.free.erase(it);
                if (left) b.free[off + need] = left;
                b.used += need;
                Buffer buf;
                buf.ctx_ = this;
                buf.block_ = bi;
                buf.buffer_ = b.buffer;
                buf.offset_ = off;
                buf.size_ = bytes;
                ++live_buffers_;
                return buf;
            }
        }
        if (attempt == 0) new_block(need, what);
    }
    YITI_ASSERT(false && "a new block holds the allocation");
    return {};
}

void Context::free_range(uint32_t block, uint64_t offset, uint64_t size) {
    const uint64_t align = std::max<uint64_t>(binding_align_, 64);
    const uint64_t n = round_up(std::max<uint64_t>(size, 1), align);
    Block& b = blocks_[block];
    auto it = b.free.emplace(offset, n).first;
    // Coalesce with the free neighbours.
    if (auto nx = std::next(it); nx != b.free.end() && it->first + it->second == nx->first) {
        it->second += nx->second;
        b.free.erase(nx);
    }
    if (it != b.free.begin()) {
        auto pv = std::prev(it);
        if (pv->first + pv->second == it->first) {
            pv->second += it->second;
            b.free.erase(it);
        }
    }
    b.used -= n;
    --live_buffers_;
    // An empty block goes back to the device unless it is the only one left.
    if (b.used == 0) {
        size_t n_blocks = 0;
        for (const auto& o : blocks_) n_blocks += o.memory != VK_NULL_HANDLE;
        if (n_blocks > 1) {
            fd_.vkDestroyBuffer(device_, b.buffer, nullptr);
            fd_.vkFreeMemory(device_, b.memory, nullptr);
            b = Block();
        }
    }
}

uint64_t Context::device_bytes_allocated() const {
    uint64_t n = 0;
    for (const auto& b : blocks_) n += b.size;
    return n;
}

uint64_t Context::device_bytes_in_use() const {
    uint64_t n = 0;
    for (const auto& b : blocks_) n += b.used;
    return n;
}

HostBuffer Context::alloc_host(uint64_t bytes, const char* what) {
    const std::string detail = strprintf("%s of staging memory for %s", human_bytes(bytes).c_str(), what);
    HostBuffer h;
    auto bci = make<VkBufferCreateInfo>(VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO);
    bci.size = bytes;
    bci.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
    check(fd_.vkCreateBuffer(device_, &bci, nullptr, &h.buffer_), "vkCreateBuffer", detail);
    VkMemoryRequirements req{};
    fd_.vkGetBufferMemoryRequirements(device_, h.buffer_, &req);
    const VkMemoryPropertyFlags hv =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    // Cached memory reads back fast; plain coherent memory is the fallback.
    uint32_t type = find_memory_type(req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
    if (type == UINT32_MAX) type = find_memory_type(req.memoryTypeBits, hv, 0);
    auto mai = make<VkMemoryAllocateInfo>(VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO);
    mai.allocationSize = req.size;
    mai.memoryTypeIndex = type;
    VkResult r = type == UINT32_MAX ? VK_ERROR_FEATURE_NOT_PRESENT
                                    : fd_.vkAllocateMemory(device_, &mai, nullptr, &h.memory_);
    void* p = nullptr;
    if (r == VK_SUCCESS) r = fd_.vkBindBufferMemory(device_, h.buffer_, h.memory_, 0);
    if (r == VK_SUCCESS) r = fd_.vkMapMemory(device_, h.memory_, 0, VK_WHOLE_SIZE, 0, &p);
    if (r != VK_SUCCESS) {
        fd_.vkDestroyBuffer(device_, h.buffer_, nullptr);
        if (h.memory_ != VK_NULL_HANDLE) fd_.vkFreeMemory(device_, h.memory_, nullptr);
        h.buffer_ = VK_NULL_HANDLE;
        h.memory_ = VK_NULL_HANDLE;
        fail(type == UINT32_MAX ? "finding host-visible coherent memory" : "vkAllocateMemory", r, detail);
    }
    h.ctx_ = this;
    h.data_ = (uint8_t*)p;
    h.size_ = bytes;
    ++live_host_buffers_;
    return h;
}

// ------------------------------------------------------------------ synchronous copies

void Context::upload(const BufferView& dst, const void* src, uint64_t n) {
    YITI_ASSERT(n <= dst.size);
    for (uint64_t off = 0; off < n; off += k_transfer_chunk_bytes) {
        const uint64_t m = std::min(k_transfer_chunk_bytes, n - off);
        transfer_->upload(dst.sub(off, m), (const uint8_t*)src + off, m);
        transfer_->run();
    }
}

void Context::download(const BufferView& src, void* dst, uint64_t n) {
    YITI_ASSERT(n <= src.size);
    for (uint64_t off = 0; off < n; off += k_transfer_chunk_bytes) {
        const uint64_t m = std::min(k_transfer_chunk_bytes, n - off);
        transfer_->download(src.sub(off, m), (uint8_t*)dst + off, m);
        transfer_->run();
    }
}

// ------------------------------------------------------------------ pipelines

const Pipeline& Context::pipeline(const PipelineDesc& d) {
    std::string key(d.shader);
    key += "[";
    for (size_t i = 0; i < d.spec.size(); ++i) key += (i ? "," : "") + std::to_string(d.spec[i]);
    key += "]";
    if (auto it = pipelines_.find(key); it != pipelines_.end()) return *it->second;

    auto mod_it = modules_.find(d.shader);
    if (mod_it == modules_.end()) {
        const ShaderBlob* blob = find_shader(d.shader);
        if (!blob)
            throw Error(
                strprintf("%s: no shader '%s' is built in", name_.c_str(), std::string(d.shader).c_str()));
        auto smi = make<VkShaderModuleCreateInfo>(VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO);
        smi.codeSize = blob->size;
        smi.pCode = reinterpret_cast<const uint32_t*>(blob->spirv);
        VkShaderModule m = VK_NULL_HANDLE;
        check(fd_.vkCreateShaderModule(device_, &smi, nullptr, &m), "vkCreateShaderModule", key);
        mod_it = modules_.emplace(std::string(d.shader), m).first;
    }

    auto p = std::make_unique<Pipeline>();
    p->name = key;
    p->n_buffers = d.n_buffers;
    p->push_bytes = d.push_bytes;
    std::vector<VkDescriptorSetLayoutBinding> binds(d.n_buffers);
    for (uint32_t i = 0; i < d.n_buffers; ++i) {
        binds[i].binding = i;
        binds[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        binds[i].descriptorCount = 1;
        binds[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    auto dsl = make<VkDescriptorSetLayoutCreateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO);
    dsl.bindingCount = d.n_buffers;
    dsl.pBindings = binds.data();
    check(fd_.vkCreateDescriptorSetLayout(device_, &dsl, nullptr, &p->set_layout),
          "vkCreateDescriptorSetLayout", key);

    VkPushConstantRange pcr{VK_SHADER_STAGE_COMPUTE_BIT, 0, d.push_bytes};
    auto pli = make<VkPipelineLayoutCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO);
    pli.setLayoutCount = 1;
    pli.pSetLayouts = &p->set_layout;
    pli.pushConstantRangeCount = d.push_bytes ? 1 : 0;
    pli.pPushConstantRanges = &pcr;
    VkResult r = fd_.vkCreatePipelineLayout(device_, &pli, nullptr, &p->layout);
    if (r != VK_SUCCESS) {
        fd_.vkDestroyDescriptorSetLayout(device_, p->set_layout, nullptr);
        fail("vkCreatePipelineLayout", r, key);
    }

    std::vector<VkSpecializationMapEntry> entries(d.spec.size());
    for (uint32_t i = 0; i < d.spec.size(); ++i) entries[i] = {i, i * 4, 4};
    VkSpecializationInfo si{(uint32_t)entries.size(), entries.data(), d.spec.size() * 4, d.spec.data()};
    auto cpi = make<VkComputePipelineCreateInfo>(VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO);
    cpi.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    cpi.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    cpi.stage.module = mod_it->second;
    cpi.stage.pName = "main";
    cpi.stage.pSpecializationInfo = d.spec.empty() ? nullptr : &si;
    cpi.layout = p->layout;
    r = fd_.vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &cpi, nullptr, &p->pipeline);
    if (r != VK_SUCCESS) {
        fd_.vkDestroyPipelineLayout(device_, p->layout, nullptr);
        fd_.vkDestroyDescriptorSetLayout(device_, p->set_layout, nullptr);
        fail("vkCreateComputePipelines", r, key);
    }
    return *pipelines_.emplace(key, std::move(p)).first->second;
}

}  // namespace yiti::vk
