#include "adapters/artifacts/io_pool.hpp"
#include "adapters/threads/thread_name.hpp"

#include <algorithm>

namespace troupe {

io_pool::io_pool(size_t threads) {
  if (threads == 0)
    threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 2, 8);
  for (size_t i = 0; i < threads; ++i)
    threads_.emplace_back([this] {
      name_this_thread("artifact-io");
      work();
    });
}

io_pool::~io_pool() {
  {
    std::lock_guard<std::mutex> g{mtx_};
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    t.join();
}

void io_pool::post(const std::string& lane, std::function<void()> task) {
  {
    std::lock_guard<std::mutex> g{mtx_};
    auto& q = lanes_[lane];
    q.push_back(std::move(task));
    if (q.size() == 1 && !busy_[lane])
      ready_.push_back(lane);
  }
  cv_.notify_one();
}

void io_pool::work() {
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !ready_.empty(); });
    if (ready_.empty()) {
      if (stop_)
        return;  // everything posted has run
      continue;
    }
    auto lane = std::move(ready_.front());
    ready_.pop_front();
    auto& q = lanes_[lane];
    auto task = std::move(q.front());
    q.pop_front();
    busy_[lane] = true;
    lock.unlock();
    task();
    lock.lock();
    busy_[lane] = false;
    auto it = lanes_.find(lane);
    if (it->second.empty()) {
      lanes_.erase(it);
      busy_.erase(lane);
    } else {
      ready_.push_back(lane);
      cv_.notify_one();
    }
  }
}

} // namespace troupe
