#include "kv/kv_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/huge_pages.h"

namespace yiti::kv {

BlockPool::BlockPool(int n_blocks) : refs_((size_t)n_blocks, 0) {
    free_.reserve((size_t)n_blocks);
    for (int b = n_blocks - 1; b >= 0; --b) free_.push_back(b);
}

int BlockPool::alloc() {
    if (free_.empty()) return -1;
    int b = free_.back();
    free_.pop_back();
    refs_[b] = 1;
    return b;
}

void BlockPool::ref(int block) {
    YITI_ASSERT(refs_[block] > 0);
    ++refs_[block];
}

void BlockPool::release(int block) {
    YITI_ASSERT(refs_[block] > 0);
    if (--refs_[block] == 0) free_.push_back(block);
}

KVCache::KVCache(const KVLayout& layout, int64_t max_tokens, const std::vector<Device>& layer_device,
                 const StorageFactory& factory)
    : layout_(layout), pool_((int)((max_tokens + layout.block_size - 1) / layout.block_size)) {
    YITI_ASSERT(layout.block_size > 0 && layout.n_layer > 0);
    YITI_ASSERT(layout.type == DType::F16 || layout.type == DType::F32);
    YITI_ASSERT(layer_device.empty() || (int)layer_device.size() == layout.n_layer);
    layer_device_ = layer_device.empty() ? std::vector<Device>((size_t)layout.n_layer) : layer_device;
    k_row_bytes_ = row_size(layout.type, layout.k_dim);
    v_row_bytes_ = row_size(layout.type, layout.v_dim);
    // Host storage for the layers on the CPU; one storage per other device for the rest.
    int n_host = 0;
    host_index_.assign((size_t)layout.n_layer, -1);
    storage_of_.assign((size_t)layout.n_layer, -1);
    std::vector<std::pair<Device, std::vector<int>>> others;
    for (int il = 0; il < layout.n_layer; ++il) {
        const Device& d = layer_device_[(size_t)il];
        if (d.kind == DeviceKind::CPU) {
            host_index_[(size_t)il] = n_host++;
            continue;
        }
        auto it = std::find_if(others.begin(), others.end(), [&](auto& o) { return o.first == d; });
        if (it == others.end()) it = others.insert(others.end(), {d, {}});
        it->second.push_back(il);
    }
    for (auto& [d, layers] : others) {
        if (!factory) throw Error("kv cache: no storage for layers on " + d.name());
        device_storage_.push_back(factory(d, layout, pool_.n_blocks(), layers));
        for (int il : layers) storage_of_[(size_t)il] = (int)device_storage_.size() - 1;
    }
    const size_t slots = (size_t)n_host * pool_.n_blocks() * layout.block_size;
    const size_t kb = slots * k_row_bytes_, vb = slots * v_row_bytes_;
    bytes_ = kb + vb;
    k_bytes_ = kb;
    v_bytes_ = vb;
    // Zero-filled (fresh anonymous pages) so unused slots never hold NaNs a kernel could trip over;
    // huge pages: decode touches each layer's cache once per token, and on calloc's 4 KB pages 1-2%
    // of TinyLlama's KV stores and attention calls stalled ~140 us on this project's VM (see the
    // stalls described in model.cpp), serial time the pool waits on.
    k_ = map_huge_pages(kb);
    v_ = map_huge_pages(vb);
    if ((kb && !k_) || (vb && !v_))
        throw Error(strprintf("kv cache: cannot allocate %.1f MiB for %lld tokens", bytes_ / 1048576.0,
                              (long long)max_tokens));
}

KVCache::~KVCache() {
    unmap_huge_pages(k_, k_bytes_);
    unmap_huge_pages(v_, v_bytes_);
}

size_t KVCache::bytes() const {
    size_t b = bytes_;
    for (auto& d : device_storage_) b += d->bytes();
    return b;
}

DeviceStorage* KVCache::device_storage(int il) const {
    const int s = storage_of_[(size_t)il];
    return s < 0 ? nullptr : device_storage_[(size_t)s].get();
}

size_t KVCache::bytes_per_token() const { return (size_t)layout_.n_layer * (k_row_bytes_ + v_row_bytes_); }

bool KVCache::reserve(SeqKV& seq, int64_t n_tokens_total) {
    const int64_t need = (n_tokens_total + layout_.block_size - 1) / layout_.block_size;
    const int64_t add = need - (int64_t)seq.blocks.size();
    if (add <= 0) return true;
    if (add > pool_.n_free()) return false;
    for (int64_t k = 0; k < add; ++k) seq.blocks.push_back(pool_.alloc());
    return true;
}

void KVCache::truncate(SeqKV& seq, int64_t n_tokens) {
    if (n_tokens < seq.n_tokens) seq.n_tokens = (int32_t)n_tokens;
    const int64_t need = (n_tokens + layout_.block_size - 1) / layout_.block_size;
    while ((int64_t)seq.blocks.size() > need) {
        pool_.release(seq.blocks.back());
        seq.blocks.pop_back();
    }
}

void KVCache::release(SeqKV& seq) {
    for (int32_t b : seq.blocks) pool_.release(b);
    seq.blocks.clear();
    seq.n_tokens = 0;
}

uint8_t* KVCache::slot(uint8_t* base, int il, const SeqKV& seq, int64_t pos, size_t row_bytes) {
    const int64_t bi = pos / layout_.block_size;
    YITI_ASSERT(bi < (int64_t)seq.blocks.size());
    return base + block_offset(il, seq.blocks[bi], row_bytes) + (size_t)(pos % layout_.block_size) * row_bytes;
}

}  // namespace yiti::kv
