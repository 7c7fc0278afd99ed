// io_pool: tasks of a lane in order and one at a time, lanes in parallel,
// everything posted run before the pool is gone.
#include "adapters/artifacts/io_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

TEST(IoPoolTest, ALaneRunsInOrderOneAtATime) {
  std::mutex m;
  std::vector<int> seen;
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  {
    io_pool pool{4};
    for (int i = 0; i < 200; ++i)
      pool.post("run-a", [&, i] {
        if (inside.fetch_add(1) != 0)
          overlapped = true;
        {
          std::lock_guard<std::mutex> g{m};
          seen.push_back(i);
        }
        inside.fetch_sub(1);
      });
  }  // drains
  ASSERT_EQ(seen.size(), 200u);
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(seen[static_cast<size_t>(i)], i);
  EXPECT_FALSE(overlapped) << "two tasks of one lane ran at once";
}

TEST(IoPoolTest, LanesRunInParallelOnABoundedNumberOfThreads) {
  io_pool pool{2};
  EXPECT_EQ(pool.threads(), 2u);
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::atomic<int> done{0};
  for (int lane = 0; lane < 8; ++lane)
    pool.post("run-" + std::to_string(lane), [&] {
      int now = ++running;
      for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
      }
      std::this_thread::sleep_for(50ms);
      --running;
      ++done;
    });
  auto t0 = std::chrono::steady_clock::now();
  while (done < 8 && std::chrono::steady_clock::now() - t0 < 5s)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(done, 8);
  EXPECT_EQ(most, 2) << "eight lanes, two threads: two at a time";
}
