#include "actors/retry_policy.hpp"

#include <algorithm>
#include <cmath>

namespace troupe {

std::vector<failure_code> default_retry_on() {
  return {failure_code::exit_nonzero, failure_code::signaled,     failure_code::timeout,
          failure_code::lost,         failure_code::network,      failure_code::rate_limited,
          failure_code::bad_response};
}

retry_policy::retry_policy(retry_spec spec) : spec_(std::move(spec)) {
}

bool retry_policy::retries(failure_code code, int32_t attempt) const {
  if (attempt >= spec_.max_attempts)
    return false;
  return std::find(spec_.on.begin(), spec_.on.end(), code) != spec_.on.end();
}

caf::timespan retry_policy::delay(int32_t attempt, double u, caf::timespan retry_after) const {
  const auto& b = spec_.backoff;
  // In double nanoseconds: initial * factor^(n-1) overflows no integer.
  double ns = static_cast<double>(b.initial.count())
              * std::pow(b.factor, std::max(0, attempt - 1));
  double cap = static_cast<double>(b.max.count());
  ns = std::min(ns, cap);
  ns *= 1.0 + b.jitter * std::clamp(u, -1.0, 1.0);
  ns = std::min(std::max(ns, static_cast<double>(retry_after.count())), cap);
  return caf::timespan{static_cast<int64_t>(std::llround(std::max(ns, 0.0)))};
}

supervision_budget::supervision_budget(supervision_spec spec) : spec_(spec) {
}

void supervision_budget::expire(caf::timestamp now) {
  while (!retries_.empty() && now - retries_.front() >= spec_.within)
    retries_.pop_front();
}

bool supervision_budget::admit(caf::timestamp now) {
  expire(now);
  if (static_cast<int64_t>(retries_.size()) >= spec_.max_retries)
    return false;
  retries_.push_back(now);
  return true;
}

size_t supervision_budget::recent(caf::timestamp now) {
  expire(now);
  return retries_.size();
}

} // namespace troupe
