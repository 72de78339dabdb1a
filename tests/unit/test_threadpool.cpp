// The thread pool: every task runs exactly once, nested calls run inline, many small jobs in quick
// succession (the decode pattern), and pools outliving sleeping workers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/threadpool.h"

using namespace yiti;

TEST(ThreadPool, EveryTaskOnce) {
    for (int nt : {1, 2, 3, 8}) {
        ThreadPool pool(nt);
        for (int64_t n : {1, 2, 7, 64, 1000}) {
            std::vector<std::atomic<int>> hits((size_t)n);
            pool.run_tasks(n, [&](int64_t t) { hits[(size_t)t].fetch_add(1); });
            for (int64_t t = 0; t < n; ++t) ASSERT_EQ(hits[(size_t)t].load(), 1) << nt << " threads, task " << t;
        }
        std::vector<std::atomic<int>> ith((size_t)nt);
        pool.run([&](int i, int n) {
            EXPECT_EQ(n, nt);
            ith[(size_t)i].fetch_add(1);
        });
        for (int i = 0; i < nt; ++i) EXPECT_EQ(ith[(size_t)i].load(), 1);
        std::vector<std::atomic<int>> cover(1001);
        pool.parallel_for(1001, 3, [&](int64_t b, int64_t e) {
            EXPECT_LE(e - b, 1001);
            for (int64_t i = b; i < e; ++i) cover[(size_t)i].fetch_add(1);
        });
        for (auto& c : cover) ASSERT_EQ(c.load(), 1);
    }
}

// Ranges: non-empty, inside [0, n), together every task once; a slow thread's share is taken over
// (from its end) by the others, so no share waits on its owner.
TEST(ThreadPool, RangesCoverEveryTaskOnce) {
    for (int nt : {1, 2, 3, 8}) {
        ThreadPool pool(nt);
        for (int64_t n : {1, 2, 7, 64, 1000, 100000}) {
            std::vector<std::atomic<int>> hits((size_t)n);
            std::atomic<int> bad{0};
            pool.run_ranges(n, [&](int64_t b, int64_t e) {
                if (!(0 <= b && b < e && e <= n)) bad.fetch_add(1);
                for (int64_t t = b; t < e && t < n; ++t) hits[(size_t)t].fetch_add(1);
            });
            ASSERT_EQ(bad.load(), 0) << nt << " threads, " << n << " tasks";
            for (int64_t t = 0; t < n; ++t) ASSERT_EQ(hits[(size_t)t].load(), 1) << nt << " threads, task " << t;
        }
    }
    ThreadPool pool(2);
    std::atomic<int64_t> by_caller{0};
    const auto caller = std::this_thread::get_id();
    pool.run_ranges(64, [&](int64_t b, int64_t e) {
        // The worker's tasks are slow: the caller, done with its own share, takes the rest of the worker's.
        if (std::this_thread::get_id() != caller) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        else by_caller.fetch_add(e - b);
    });
    EXPECT_GT(by_caller.load(), 32);
}

TEST(ThreadPool, NestedCallsRunInline) {
    ThreadPool pool(4);
    std::atomic<int> total{0};
    pool.run_tasks(8, [&](int64_t) { pool.run_tasks(5, [&](int64_t) { total.fetch_add(1); }); });
    EXPECT_EQ(total.load(), 40);
}

TEST(ThreadPool, ManySmallJobs) {
    ThreadPool pool(3);
    std::atomic<int64_t> sum{0};
    for (int j = 0; j < 20000; ++j) pool.run_tasks(3, [&](int64_t t) { sum.fetch_add(t + 1); });
    EXPECT_EQ(sum.load(), 20000 * 6);
}

TEST(ThreadPool, JobsAfterWorkersSlept) {
    ThreadPool pool(2);
    for (int round = 0; round < 3; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));  // workers go to sleep
        std::atomic<int> n{0};
        pool.run_tasks(16, [&](int64_t) {
            std::this_thread::sleep_for(std::chrono::microseconds(200));
            n.fetch_add(1);
        });
        EXPECT_EQ(n.load(), 16);
    }
}
