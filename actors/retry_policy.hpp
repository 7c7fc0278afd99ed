// retry_policy and supervision_budget: the retry decisions of a run, with no
// actors in them (in the manner of Nomad's RestartTracker). Time and
// randomness come in as arguments, so the schedule is exact under test.
//
//   attempt n fails with code c
//     ├─ c not in retry.on, or n == max_attempts ─▶ give up
//     ├─ the run's budget (max_retries within `within`) spent ─▶ give up, run fails
//     └─ retry after delay(n) = min(max, initial * factor^(n-1)) * (1 ± jitter),
//        at least Retry-After when the server sent one (capped by max)
#pragma once

#include "messages/status.hpp"

#include <caf/timestamp.hpp>

#include <chrono>
#include <deque>
#include <string>
#include <vector>

namespace troupe {

struct backoff_spec {
  caf::timespan initial = std::chrono::seconds(10);
  double factor = 2.0;
  caf::timespan max = std::chrono::minutes(5);
  double jitter = 0.0;  // 0..1: the delay is scaled by a factor in [1 - jitter, 1 + jitter]
};

struct retry_spec {
  int32_t max_attempts = 1;  // 1: no retries
  backoff_spec backoff;
  std::vector<failure_code> on;  // the codes that are retried
};

/// The codes retried when a `retry` block has no `on`: the transient ones.
std::vector<failure_code> default_retry_on();

struct supervision_spec {
  int32_t max_retries = 10;  // retries of all stages together...
  caf::timespan within = std::chrono::minutes(10);  // ...within this window
};

class retry_policy {
public:
  explicit retry_policy(retry_spec spec = {});

  const retry_spec& spec() const {
    return spec_;
  }

  /// Whether a failure with `code` after attempt `attempt` may be retried
  /// (ignoring the run's budget).
  bool retries(failure_code code, int32_t attempt) const;

  /// The wait before attempt `attempt + 1`. `u` in [-1, 1] is the jitter
  /// draw; `retry_after` (0: none) is the server's minimum.
  caf::timespan delay(int32_t attempt, double u, caf::timespan retry_after) const;

private:
  retry_spec spec_;
};

/// OTP-style supervisor intensity: at most max_retries within `within`.
class supervision_budget {
public:
  explicit supervision_budget(supervision_spec spec = {});

  const supervision_spec& spec() const {
    return spec_;
  }

  /// Records a retry at `now`; false (and nothing recorded) when it would be
  /// one more than max_retries within the window ending at `now`.
  bool admit(caf::timestamp now);

  /// Retries recorded within the window ending at `now`.
  size_t recent(caf::timestamp now);

private:
  void expire(caf::timestamp now);

  supervision_spec spec_;
  std::deque<caf::timestamp> retries_;
};

} // namespace troupe
