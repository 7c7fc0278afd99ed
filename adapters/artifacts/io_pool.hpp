// io_pool: a few threads that do the blocking file work (writes, fsyncs) of
// every run folder, so that a process with hundreds of runs does not need a
// thread per run. Work is posted to a lane (a run folder): tasks of one lane
// run one at a time, in the order posted; different lanes run in parallel.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace troupe {

class io_pool {
public:
  /// `threads` 0: one per core, at least 2 and at most 8.
  explicit io_pool(size_t threads = 0);
  /// Runs what was posted, then joins the threads.
  ~io_pool();

  io_pool(const io_pool&) = delete;
  io_pool& operator=(const io_pool&) = delete;

  /// Runs `task` on a pool thread after every task posted before it to
  /// `lane` has finished.
  void post(const std::string& lane, std::function<void()> task);

  size_t threads() const {
    return threads_.size();
  }

private:
  void work();

  std::mutex mtx_;
  std::condition_variable cv_;
  std::map<std::string, std::deque<std::function<void()>>> lanes_;
  std::deque<std::string> ready_;  // lanes with work and no thread on them
  std::map<std::string, bool> busy_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

} // namespace troupe
