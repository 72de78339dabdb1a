// A fixed pool of worker threads for data-parallel kernels. The caller takes part as thread 0.
//
// Work is handed out as tasks: the task range is cut into one contiguous share per thread, each
// thread works through its own share first, front to back (neighbouring tasks read neighbouring
// memory, which keeps each core's memory stream sequential), then takes what is left of the others'
// from their ends (so their owners' streams stay sequential too). A call returns when
// every task has finished, not when every thread has checked in: on a busy machine a worker that is
// not running at the moment delays nothing (the running threads take its share), which matters when
// the pool has more threads than the machine gives this process. Workers spin briefly for the next
// job (kernels come in quick succession), then sleep.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace yiti {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Calls fn(task) once for every task in [0, n_tasks), on whichever threads are free, and returns
    // when all calls have returned. fn must not throw. Calls from inside a task run inline.
    void run_tasks(int64_t n_tasks, const std::function<void(int64_t)>& fn);

    // As run_tasks, with the tasks handed out as ranges: fn(begin, end) runs tasks [begin, end).
    // A thread claims a quarter of what is left of a share at a time, so tasks can be small (a
    // job's tail is then one small task) without a claim per task.
    void run_ranges(int64_t n_tasks, const std::function<void(int64_t, int64_t)>& fn);

    // Runs fn(ith, nth) once for every ith in [0, nth) (nth = size()), returns when all are done.
    // Each ith runs once, but not necessarily on its own thread. fn must not throw.
    void run(const std::function<void(int ith, int nth)>& fn);

    // Splits [0, n) into contiguous chunks of at least `grain`, one call fn(begin, end) per chunk,
    // handed out dynamically.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

    // Memory the next jobs will stream, per thread: a thread that runs out of tasks (the tail of a
    // job, or the serial stretch between two jobs) prefetches its ranges into its L2 cache until the
    // next job arrives, instead of idling; each hint is prefetched once per thread, over as many idle
    // stretches as it takes. Prefetches never fault, so a stale hint costs nothing but bandwidth.
    static constexpr int kHintRanges = 4;
    struct HintRange {
        const void* p = nullptr;
        size_t bytes = 0;
    };
    // ranges[ith * kHintRanges + i]; threads with no ranges get empty ones.
    void set_prefetch_hint(const HintRange* ranges);

private:
    void worker(int ith);
    // Prefetches thread ith's hint ranges until they are done or: (wait_tasks < 0) a job other than
    // `seen` is published, (else) wait_tasks tasks of the current job are done.
    void idle_prefetch(int ith, uint32_t seen, int64_t wait_tasks);
    void work(uint64_t gen, int ith);  // claims and runs tasks of job `gen` until none are left
    bool claim_from(int range, uint64_t gbits, bool from_end, int64_t* begin, int64_t* end);

    // A share's claim word: generation (24 bits) | end of the share (20 bits) | next task (20 bits).
    static constexpr int kTaskBits = 20;
    static constexpr uint64_t kTaskMask = (1ull << kTaskBits) - 1;
    static constexpr int64_t kMaxTasks = (int64_t)kTaskMask;
    struct alignas(64) Share {
        std::atomic<uint64_t> claim{0};
    };
    // Tasks finished in the current job by each thread: written by that thread only (a plain store,
    // no locked instruction and no cache line shared between cores per task), summed by the caller.
    struct alignas(64) Done {
        std::atomic<int64_t> n{0};
        uint64_t hint_used = 0;  // the hint generation this thread last prefetched (its own field)
        size_t hint_pos = 0;     // bytes of that hint's ranges prefetched so far
    };
    struct alignas(64) Hint {
        std::atomic<const void*> p{nullptr};
        std::atomic<size_t> bytes{0};
    };
    int64_t done_total() const;

    int n_threads_;
    std::vector<std::thread> threads_;
    std::unique_ptr<Share[]> shares_;  // one per thread
    std::unique_ptr<Done[]> done_;     // one per thread
    std::unique_ptr<Hint[]> hints_;    // n_threads_ * kHintRanges
    std::atomic<uint64_t> hint_gen_{0};
    int64_t n_tasks_ = 0;
    alignas(64) std::atomic<uint32_t> published_{0};  // generation of the current job
    const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
    uint32_t gen_ = 0;  // caller side
    std::mutex mu_;
    std::condition_variable cv_;       // workers sleep here between jobs
    std::condition_variable done_cv_;  // the caller sleeps here when a task runs late
    std::atomic<int> sleepers_{0};
    std::atomic<bool> caller_waiting_{false};
    bool stop_ = false;
};

// Number of threads to use by default: the physical cores this process may run on.
int default_thread_count();

}  // namespace yiti
