// The machine's memory read bandwidth, measured: every thread streams through its share of a
// buffer much larger than the caches, several times, with plain loads, with software prefetching
// (as the decode kernels use it) and with prefetching paced by a little work per line (as a decode
// kernel reads); the best pass counts.
#pragma once
#include <cstddef>

namespace yiti {

class ThreadPool;

struct MemBwResult {
    double gb_per_s = 0;        // best pass, 1e9 bytes per second
    double gb_per_s_median = 0;  // median pass
    size_t buffer_bytes = 0;
    int passes = 0;
    int threads = 0;
};

// Reads a buffer of buffer_bytes (default: 2 GiB, or a quarter of the free memory if smaller) with
// the pool's threads, `passes` times after one warm-up pass.
MemBwResult measure_read_bandwidth(ThreadPool& pool, size_t buffer_bytes = 0, int passes = 5);

}  // namespace yiti
