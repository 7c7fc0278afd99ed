#include "actors/run_queue.hpp"

namespace troupe {

void run_queue::set_pipeline_limit(const std::string& pipeline, int32_t max_running) {
  if (max_running <= 0)
    pipeline_limits_.erase(pipeline);
  else
    pipeline_limits_[pipeline] = max_running;
}

bool run_queue::enqueue(queued_run r) {
  if (queued_ids_.count(r.run_id) > 0 || running_.count(r.run_id) > 0)
    return false;
  order_key key{-r.priority, next_++};
  queued_ids_[r.run_id] = key;
  queue_.emplace(key, std::move(r));
  return true;
}

bool run_queue::remove(const std::string& run_id) {
  auto it = queued_ids_.find(run_id);
  if (it == queued_ids_.end())
    return false;
  queue_.erase(it->second);
  queued_ids_.erase(it);
  return true;
}

std::vector<queued_run> run_queue::admit() {
  std::vector<queued_run> out;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (max_running_ > 0 && running() >= max_running_)
      break;
    auto& r = it->second;
    auto limit = pipeline_limits_.find(r.pipeline);
    if (limit != pipeline_limits_.end() && running_by_pipeline_[r.pipeline] >= limit->second) {
      ++it;  // its pipeline is full: the next one may go
      continue;
    }
    running_[r.run_id] = r.pipeline;
    ++running_by_pipeline_[r.pipeline];
    queued_ids_.erase(r.run_id);
    out.push_back(std::move(r));
    it = queue_.erase(it);
  }
  return out;
}

void run_queue::finished(const std::string& run_id) {
  auto it = running_.find(run_id);
  if (it == running_.end())
    return;
  if (--running_by_pipeline_[it->second] <= 0)
    running_by_pipeline_.erase(it->second);
  running_.erase(it);
}

} // namespace troupe
