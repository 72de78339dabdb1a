// Anonymous memory in whole 2 MB pages with transparent huge pages asked for: what the weights, the
// KV cache and the bandwidth measurement stream through (fewer TLB misses, and on this project's VM
// fewer regions that stall a reader; see model.cpp). Zero-filled; only pages written are backed.
#pragma once
#include <cstddef>
#include <cstdint>

namespace yiti {

constexpr size_t kHugePage = 2u << 20;

inline size_t huge_page_round(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

// Maps huge_page_round(bytes) bytes (free them with unmap_huge_pages(p, bytes)); nullptr when the
// memory cannot be mapped or bytes is 0.
uint8_t* map_huge_pages(size_t bytes);
void unmap_huge_pages(void* p, size_t bytes);

}  // namespace yiti
