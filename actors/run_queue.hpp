// run_queue: which queued runs may start now. The coordinator's scheduler
// actor holds one and translates messages to these calls; the decisions
// live here, with no CAF in them (as Nomad keeps its scheduler's).
//
// Limits: a global `max_running` and, per pipeline, its `max_running:`
// (0: none). Order: higher priority first, first come first within one
// priority. A run whose pipeline is at its limit waits without holding up
// runs of other pipelines behind it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace troupe {

struct queued_run {
  std::string run_id;
  std::string pipeline;
  int32_t priority = 0;  // higher starts first
};

class run_queue {
public:
  explicit run_queue(int32_t max_running = 0) : max_running_(max_running) {
  }

  /// 0 removes the pipeline's limit.
  void set_pipeline_limit(const std::string& pipeline, int32_t max_running);

  /// Queues a run (its arrival order counts for FIFO); false if the id is
  /// queued or running already.
  bool enqueue(queued_run r);

  /// Takes a queued run out (cancelled before it started); false if it was
  /// not queued.
  bool remove(const std::string& run_id);

  /// The runs to start now, in order; they count as running from here.
  std::vector<queued_run> admit();

  /// A running run ended (or its start failed): its slot is free.
  void finished(const std::string& run_id);

  int32_t running() const {
    return static_cast<int32_t>(running_.size());
  }
  size_t queued() const {
    return queue_.size();
  }

private:
  using order_key = std::tuple<int32_t, uint64_t>;  // (-priority, arrival)
  int32_t max_running_;
  uint64_t next_ = 0;
  std::map<order_key, queued_run> queue_;
  std::map<std::string, order_key> queued_ids_;
  std::map<std::string, std::string> running_;  // run -> pipeline
  std::map<std::string, int32_t> running_by_pipeline_;
  std::map<std::string, int32_t> pipeline_limits_;
};

} // namespace troupe
