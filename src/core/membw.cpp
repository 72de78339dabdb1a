#include "core/membw.h"

#include <immintrin.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"

namespace yiti {

namespace {

// Sums 64-bit words with wide loads (the sum keeps the compiler from dropping the reads).
// Variant 0: plain loads; 1: with software prefetch into L1 1.5 KB ahead; 2: also into L2 8 KB
// ahead (what the decode kernels do). The best variant counts.
__attribute__((target("avx2"))) uint64_t read_avx2(const uint8_t* p, size_t n, int variant) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        if (variant >= 1) {
            __asm__ volatile("prefetcht0 %0" ::"m"(*(p + i + 1536)));
            __asm__ volatile("prefetcht0 %0" ::"m"(*(p + i + 1536 + 64)));
        }
        if (variant >= 2) {
            __asm__ volatile("prefetcht1 %0" ::"m"(*(p + i + 8192)));
            __asm__ volatile("prefetcht1 %0" ::"m"(*(p + i + 8192 + 64)));
        }
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i*)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i*)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i*)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i*)(p + i + 96)));
    }
    const __m256i s = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (uint64_t)_mm256_extract_epi64(s, 0) ^ (uint64_t)_mm256_extract_epi64(s, 3);
}

uint64_t read_scalar(const uint8_t* p, size_t n) {
    uint64_t a = 0, b = 0;
    const uint64_t* q = (const uint64_t*)p;
    for (size_t i = 0; i + 2 <= n / 8; i += 2) a ^= q[i], b ^= q[i + 1];
    return a ^ b;
}

size_t default_buffer() {
    size_t want = 2ull << 30;
    const long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0) want = std::min(want, (size_t)pages * (size_t)psz / 4);
    return std::max<size_t>(want, 64u << 20);
}

}  // namespace

MemBwResult measure_read_bandwidth(ThreadPool& pool, size_t buffer_bytes, int passes) {
    if (buffer_bytes == 0) buffer_bytes = default_buffer();
    const int nt = pool.size();
    const size_t align = 2u << 20;
    buffer_bytes = (buffer_bytes + align - 1) / align * align;
    void* mem = mmap(nullptr, buffer_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw Error(strprintf("membw: cannot map %zu bytes", buffer_bytes));
    madvise(mem, buffer_bytes, MADV_HUGEPAGE);
    uint8_t* buf = (uint8_t*)mem;
    // Each thread touches (and later reads) its own share, so pages sit near the reader.
    const size_t share = buffer_bytes / (size_t)nt / 4096 * 4096;
    pool.run([&](int ith, int) { memset(buf + (size_t)ith * share, ith + 1, share); });

    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2");
    std::atomic<uint64_t> sink{0};
    std::vector<double> rates;
    const int n_variants = avx2 ? 3 : 1;
    for (int pass = 0; pass <= passes; ++pass) {
        double best = 0;
        for (int variant = 0; variant < n_variants; ++variant) {
            const auto t0 = std::chrono::steady_clock::now();
            pool.run([&](int ith, int) {
                // The last 8 KB of a share are left out: the prefetches run ahead of the loads.
                const uint8_t* p = buf + (size_t)ith * share;
                sink.fetch_xor(avx2 ? read_avx2(p, share - 8192, variant) : read_scalar(p, share), std::memory_order_relaxed);
            });
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            best = std::max(best, (double)(share - (avx2 ? 8192 : 0)) * nt / s / 1e9);
        }
        if (pass > 0) rates.push_back(best);  // pass 0 warms up
    }
    munmap(mem, buffer_bytes);
    MemBwResult r;
    std::sort(rates.begin(), rates.end());
    r.gb_per_s = rates.back();
    r.gb_per_s_median = rates[rates.size() / 2];
    r.buffer_bytes = share * nt;
    r.passes = passes;
    r.threads = nt;
    if (sink.load() == 0x5eed) r.passes += 0;  // keeps the reads observable
    return r;
}

}  // namespace yiti
