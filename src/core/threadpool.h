// A fixed pool of worker threads for data-parallel kernels. The caller takes part as thread 0.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
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

    // Runs fn(ith, nth) on every thread (ith in [0, nth)), returns when all are done.
    // fn must not throw.
    void run(const std::function<void(int ith, int nth)>& fn);

    // Splits [0, n) into contiguous chunks of at least `grain`, one call fn(begin, end) per chunk,
    // handed out dynamically.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

private:
    void worker(int ith);

    int n_threads_;
    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable cv_;
    const std::function<void(int, int)>* job_ = nullptr;
    uint64_t generation_ = 0;
    std::atomic<int> pending_{0};
    std::mutex done_mu_;
    std::condition_variable done_cv_;
    std::atomic<uint64_t> published_{0};
    bool stop_ = false;
};

// Number of threads to use by default: the physical cores this process may run on.
int default_thread_count();

}  // namespace yiti
