#include "core/threadpool.h"

#include <sched.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace yiti {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

thread_local bool t_in_task = false;  // nested calls run inline

// Pause iterations before a worker sleeps: ~0.2 ms where a pause takes ~10 ns (this project's
// machine), longer where it takes ~40 ns. At 3000 (~30 us) a worker slept through the gap between
// two decode tokens and woke late for the next product: the start lag of 2-thread decode products
// (publish to the worker's first task) had p99 58 us and mean 2.4 us; at 20000, p99 3.5 us and
// mean 1.6 us (tinyllama-Q4_K_M tg128, ~22800 products).
constexpr int kWorkerSpins = 20000;
constexpr int kCallerSpins = 2000;  // before the caller sleeps on a late task

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)), shares_(new Share[std::max(1, n_threads)]), done_(new Done[std::max(1, n_threads)]),
      hints_(new Hint[(size_t)std::max(1, n_threads) * kHintRanges]) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        published_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

bool ThreadPool::claim_from(int range, uint64_t gbits, bool from_end, int64_t* begin, int64_t* end) {
    std::atomic<uint64_t>& w = shares_[range].claim;
    uint64_t v = w.load(std::memory_order_acquire);
    for (;;) {
        if ((v >> (2 * kTaskBits)) != gbits) return false;  // that job is over
        const int64_t e = (int64_t)((v >> kTaskBits) & kTaskMask);
        const int64_t t = (int64_t)(v & kTaskMask);
        if (t >= e) return false;
        // A quarter of what is left (at least one task): few claims while much is left, single
        // tasks at the end. The owner takes from the front of its share, a thief from the back, so
        // the owner's stream stays sequential to the end of what it keeps.
        const int64_t k = std::max<int64_t>(1, (e - t) / 4);
        const uint64_t next = from_end ? v - ((uint64_t)k << kTaskBits) : v + (uint64_t)k;
        if (w.compare_exchange_weak(v, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
            *begin = from_end ? e - k : t;
            *end = from_end ? e : t + k;
            return true;
        }
    }
}

void ThreadPool::work(uint64_t gen, int ith) {
    const uint64_t gbits = gen & 0xFFFFFF;
    // Own share first, then the others' (from their ends).
    for (int k = 0; k < n_threads_; ++k) {
        const int range = (ith + k) % n_threads_;
        int64_t b, e;
        while (claim_from(range, gbits, k != 0, &b, &e)) {
            // Tasks [b, e) of job gen are ours: the job cannot finish (nor fn_, n_tasks_ change)
            // before we report them done.
            const int64_t n = n_tasks_;
            t_in_task = true;
            (*fn_)(b, e);
            t_in_task = false;
            std::atomic<int64_t>& d = done_[ith].n;
            d.store(d.load(std::memory_order_relaxed) + (e - b), std::memory_order_release);
            // A sleeping caller is woken by whoever sees the job complete; one that misses this
            // (its flag not yet visible) wakes from its timed wait.
            if (caller_waiting_.load(std::memory_order_relaxed) && done_total() >= n) {
                std::lock_guard<std::mutex> lk(mu_);
                done_cv_.notify_one();
            }
        }
    }
}

void ThreadPool::set_prefetch_hint(const HintRange* ranges) {
    for (int i = 0; i < n_threads_ * kHintRanges; ++i) {
        hints_[i].p.store(ranges[i].p, std::memory_order_relaxed);
        hints_[i].bytes.store(ranges[i].bytes, std::memory_order_relaxed);
    }
    hint_gen_.fetch_add(1, std::memory_order_release);
}

void ThreadPool::idle_prefetch(int ith, uint32_t seen, int64_t wait_tasks) {
    const uint64_t hg = hint_gen_.load(std::memory_order_acquire);
    Done& me = done_[ith];
    if (hg != me.hint_used) {
        me.hint_used = hg;
        me.hint_pos = 0;
    }
    // Resumes where the last idle stretch of this hint stopped (a job's tail, then the serial
    // stretch after it), until the thread's ranges are done.
    size_t skip = me.hint_pos;
    for (int i = 0; i < kHintRanges; ++i) {
        const Hint& h = hints_[(size_t)ith * kHintRanges + i];
        const char* p = (const char*)h.p.load(std::memory_order_relaxed);
        const size_t n = h.bytes.load(std::memory_order_relaxed);
        if (!p || skip >= n) {
            skip -= std::min(skip, n);
            continue;
        }
        // Checks for a new job every 4 lines (every 16 lines, a burst of prefetches with the queue full
        // could hold the job's start back by a few hundred ns).
        for (size_t off = skip; off < n; off += 256) {
            if (wait_tasks >= 0 ? done_total() >= wait_tasks : published_.load(std::memory_order_relaxed) != seen) return;
            const size_t end = std::min(n, off + 256);
            for (size_t l = off; l < end; l += 64) __asm__ volatile("prefetcht1 %0" ::"m"(*(p + l)));
            me.hint_pos += end - off;
        }
        skip = 0;
    }
}

int64_t ThreadPool::done_total() const {
    int64_t s = 0;
    for (int i = 0; i < n_threads_; ++i) s += done_[i].n.load(std::memory_order_acquire);
    return s;
}

void ThreadPool::worker(int ith) {
    // The generation at construction (0), not the one when this thread first runs: a job published
    // before the thread got going would otherwise look old to it, and it would sleep through it.
    uint32_t seen = 0;
    for (;;) {
        idle_prefetch(ith, seen, -1);
        uint32_t g = published_.load(std::memory_order_acquire);
        for (int spins = 0; g == seen && spins < kWorkerSpins; ++spins) {
            cpu_relax();
            g = published_.load(std::memory_order_acquire);
        }
        if (g == seen) {
            std::unique_lock<std::mutex> lk(mu_);
            sleepers_.fetch_add(1, std::memory_order_seq_cst);
            cv_.wait(lk, [&] { return stop_ || published_.load(std::memory_order_seq_cst) != seen; });
            sleepers_.fetch_sub(1, std::memory_order_acq_rel);
            if (stop_) return;
            g = published_.load(std::memory_order_acquire);
        }
        seen = g;
        work(g, ith);
    }
}

void ThreadPool::run_tasks(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
    run_ranges(n_tasks, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) fn(t);
    });
}

void ThreadPool::run_ranges(int64_t n_tasks, const std::function<void(int64_t, int64_t)>& fn) {
    if (n_tasks <= 0) return;
    if (n_threads_ == 1 || n_tasks == 1 || t_in_task) {
        fn(0, n_tasks);
        return;
    }
    YITI_ASSERT(n_tasks <= kMaxTasks);
    fn_ = &fn;
    n_tasks_ = n_tasks;
    // No worker writes its counter now: every task of the last job has been counted.
    for (int r = 0; r < n_threads_; ++r) done_[r].n.store(0, std::memory_order_relaxed);
    gen_ = (gen_ + 1) & 0xFFFFFF;
    for (int r = 0; r < n_threads_; ++r) {
        const uint64_t b = (uint64_t)(n_tasks * r / n_threads_), e = (uint64_t)(n_tasks * (r + 1) / n_threads_);
        shares_[r].claim.store(((uint64_t)gen_ << (2 * kTaskBits)) | (e << kTaskBits) | b, std::memory_order_release);
    }
    // seq_cst: the store must be visible before we read sleepers_ (a worker increments sleepers_ and
    // then reads published_; one of us sees the other).
    published_.store(gen_, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lk(mu_);
        cv_.notify_all();
    }
    work(gen_, 0);
    // Every task is claimed; wait for those still running elsewhere (prefetching what the next job
    // will read, if told, while they run).
    if (done_total() < n_tasks) idle_prefetch(0, 0, n_tasks);
    for (int spins = 0; done_total() < n_tasks; ++spins) {
        if (spins < kCallerSpins) {
            cpu_relax();
            continue;
        }
        std::unique_lock<std::mutex> lk(mu_);
        caller_waiting_.store(true, std::memory_order_seq_cst);
        while (done_total() < n_tasks) done_cv_.wait_for(lk, std::chrono::microseconds(50));
        caller_waiting_.store(false, std::memory_order_relaxed);
    }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
    const int nth = n_threads_;
    run_tasks(nth, [&](int64_t t) { fn((int)t, nth); });
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    if (n_threads_ == 1 || n <= grain) {
        fn(0, n);
        return;
    }
    // Chunks: about 4 per thread, but not smaller than grain.
    int64_t chunk = std::max<int64_t>(grain, (n + 4 * n_threads_ - 1) / (4 * n_threads_));
    chunk = std::max<int64_t>(chunk, (n + kMaxTasks - 1) / kMaxTasks);
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    run_tasks(n_chunks, [&](int64_t c) { fn(c * chunk, std::min(n, (c + 1) * chunk)); });
}

int default_thread_count() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    unsigned hc = std::thread::hardware_concurrency();
    return hc ? (int)hc : 1;
}

}  // namespace yiti
