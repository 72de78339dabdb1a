// Paged KV cache: fixed-size blocks of token slots, a block table per sequence.
// Bookkeeping (BlockPool) is separate from the storage of the blocks (KVStorage), so the
// scheduler can plan without touching device memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

namespace yiti::kv {

struct KVLayout {
    int n_layer = 0;
    int64_t k_dim = 0;      // values per token per layer stored as "K" (all KV heads, or the MLA latent+rope)
    int64_t v_dim = 0;      // values per token per layer stored as "V" (0 when V is read from K, as in MLA)
    DType type = DType::F16;  // F16 in the fast mode, F32 in exact mode
    int block_size = 32;    // token slots per block
};

// Reference-counted allocation of block ids (shared prefixes hold one block in several tables).
class BlockPool {
public:
    explicit BlockPool(int n_blocks);
    int n_blocks() const { return (int)refs_.size(); }
    int n_free() const { return (int)free_.size(); }
    int alloc();  // -1 when none is free
    void ref(int block);
    void release(int block);
    int refcount(int block) const { return refs_[block]; }

private:
    std::vector<int> refs_;
    std::vector<int> free_;
};

// The block table of one sequence.
struct SeqKV {
    std::vector<int32_t> blocks;
    int32_t n_tokens = 0;  // positions [0, n_tokens) hold valid K/V
};

// The storage of some layers' blocks in a GPU's memory (the backend of that device defines it).
// The bookkeeping (BlockPool, the sequences' block tables) stays in KVCache, on the host.
class DeviceStorage {
public:
    virtual ~DeviceStorage() = default;
    virtual Device device() const = 0;
    virtual size_t bytes() const = 0;
};
// Makes the storage of `layers` (model layer indices) on `device` for n_blocks blocks of `layout`.
using StorageFactory = std::function<std::unique_ptr<DeviceStorage>(const Device& device, const KVLayout& layout,
                                                                     int n_blocks, const std::vector<int>& layers)>;

class KVCache {
public:
    // layer_device[il]: where layer il's attention runs and its K/V live (empty: every layer on the
    // CPU). Layers on another device get their storage from `factory`.
    KVCache(const KVLayout& layout, int64_t max_tokens, const std::vector<Device>& layer_device = {},
            const StorageFactory& factory = {});
    KVCache(const KVCache&) = delete;
    KVCache& operator=(const KVCache&) = delete;
    ~KVCache();

    const KVLayout& layout() const { return layout_; }
    int block_size() const { return layout_.block_size; }
    int64_t capacity_tokens() const { return (int64_t)pool_.n_blocks() * layout_.block_size; }
    int64_t free_tokens() const { return (int64_t)pool_.n_free() * layout_.block_size; }
    size_t bytes() const;  // host and device storage
    const Device& layer_device(int il) const { return layer_device_[(size_t)il]; }
    // The device storage holding layer il (null for a layer on the CPU).
    DeviceStorage* device_storage(int il) const;
    size_t bytes_per_token() const;
    BlockPool& pool() { return pool_; }

    // Grows the table so that positions [0, n_tokens_total) have slots; false (nothing changed)
    // when the pool cannot supply the blocks.
    bool reserve(SeqKV& seq, int64_t n_tokens_total);
    // Drops positions >= n_tokens (keeps whole blocks that are still needed).
    void truncate(SeqKV& seq, int64_t n_tokens);
    void release(SeqKV& seq);

    // Row of K (or V) for layer il (a layer on the CPU) at a token position of a sequence.
    uint8_t* k_row(int il, const SeqKV& seq, int64_t pos) { return slot(k_, il, seq, pos, k_row_bytes_); }
    uint8_t* v_row(int il, const SeqKV& seq, int64_t pos) { return slot(v_, il, seq, pos, v_row_bytes_); }
    // Start of a whole block (block_size consecutive rows) of layer il.
    uint8_t* k_block(int il, int block) { return k_ + block_offset(il, block, k_row_bytes_); }
    uint8_t* v_block(int il, int block) { return v_ + block_offset(il, block, v_row_bytes_); }
    size_t k_row_bytes() const { return k_row_bytes_; }
    size_t v_row_bytes() const { return v_row_bytes_; }

private:
    size_t block_offset(int il, int block, size_t row_bytes) const {
        const int h = host_index_[(size_t)il];
        YITI_ASSERT(h >= 0);
        return ((size_t)h * pool_.n_blocks() + (size_t)block) * row_bytes * layout_.block_size;
    }
    uint8_t* slot(uint8_t* base, int il, const SeqKV& seq, int64_t pos, size_t row_bytes);

    KVLayout layout_;
    BlockPool pool_;
    size_t k_row_bytes_ = 0, v_row_bytes_ = 0;
    uint8_t* k_ = nullptr;
    uint8_t* v_ = nullptr;
    size_t bytes_ = 0, k_bytes_ = 0, v_bytes_ = 0;
    std::vector<Device> layer_device_;
    std::vector<int> host_index_;  // per layer: its index in the host storage, -1 on another device
    std::vector<std::unique_ptr<DeviceStorage>> device_storage_;
    std::vector<int> storage_of_;  // per layer: index into device_storage_, -1 on the CPU
};

}  // namespace yiti::kv
