// Backoff schedules, retry decisions and the supervision budget, exact
// under an injected clock and jitter.
#include "actors/retry_policy.hpp"
#include "actors/running_order.hpp"

#include <gtest/gtest.h>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

retry_spec issue_example() {
  retry_spec r;
  r.max_attempts = 6;
  r.backoff = backoff_spec{10s, 3.0, 5min, 0.0};
  r.on = {failure_code::timeout, failure_code::network, failure_code::rate_limited,
          failure_code::exit_nonzero};
  return r;
}

caf::timestamp t0() {
  return caf::timestamp{std::chrono::hours(24 * 365 * 56)};
}

} // namespace

TEST(RetryPolicyTest, BackoffIsInitialTimesFactorPowersCappedAtMax) {
  retry_policy p{issue_example()};
  EXPECT_EQ(p.delay(1, 0, 0s), caf::timespan{10s});
  EXPECT_EQ(p.delay(2, 0, 0s), caf::timespan{30s});
  EXPECT_EQ(p.delay(3, 0, 0s), caf::timespan{90s});
  EXPECT_EQ(p.delay(4, 0, 0s), caf::timespan{270s});
  EXPECT_EQ(p.delay(5, 0, 0s), caf::timespan{5min}) << "810 s capped at max";
  EXPECT_EQ(p.delay(60, 0, 0s), caf::timespan{5min}) << "no overflow far out";
}

TEST(RetryPolicyTest, JitterScalesWithinItsBandAndNeverPassesMax) {
  auto spec = issue_example();
  spec.backoff.jitter = 0.1;
  retry_policy p{spec};
  EXPECT_EQ(p.delay(1, -1.0, 0s), caf::timespan{9s});
  EXPECT_EQ(p.delay(1, 1.0, 0s), caf::timespan{11s});
  EXPECT_EQ(p.delay(2, 0.5, 0s), caf::timespan{31500ms});
  EXPECT_EQ(p.delay(5, 1.0, 0s), caf::timespan{5min}) << "jitter above max is capped";
}

TEST(RetryPolicyTest, RetryAfterIsAMinimumCappedByMax) {
  retry_policy p{issue_example()};
  EXPECT_EQ(p.delay(1, 0, 45s), caf::timespan{45s}) << "the server asked for more than 10 s";
  EXPECT_EQ(p.delay(3, 0, 45s), caf::timespan{90s}) << "backoff already longer";
  EXPECT_EQ(p.delay(1, 0, 1h), caf::timespan{5min}) << "capped by max";
}

TEST(RetryPolicyTest, RetriesOnlyListedCodesWhileAttemptsRemain) {
  retry_policy p{issue_example()};
  EXPECT_TRUE(p.retries(failure_code::timeout, 1));
  EXPECT_TRUE(p.retries(failure_code::exit_nonzero, 5));
  EXPECT_FALSE(p.retries(failure_code::exit_nonzero, 6)) << "max_attempts reached";
  EXPECT_FALSE(p.retries(failure_code::spawn_failed, 1)) << "not in on";
  EXPECT_FALSE(retry_policy{}.retries(failure_code::timeout, 1)) << "default: one attempt";
}

TEST(SupervisionBudgetTest, AdmitsMaxRetriesWithinTheWindowThenRefuses) {
  supervision_budget b{supervision_spec{3, 10min}};
  auto t = t0();
  EXPECT_TRUE(b.admit(t));
  EXPECT_TRUE(b.admit(t + 1min));
  EXPECT_TRUE(b.admit(t + 2min));
  EXPECT_FALSE(b.admit(t + 3min)) << "a 4th retry within 10 minutes";
  EXPECT_EQ(b.recent(t + 3min), 3u);
  EXPECT_TRUE(b.admit(t + 10min)) << "the first retry left the window";
  EXPECT_FALSE(b.admit(t + 10min + 30s));
}

namespace {

run_record one_stage() {
  run_record r;
  r.run_id = "run-1";
  r.pipeline = "p";
  r.started_at = t0();
  stage_record s;
  s.name = "fetch";
  s.strategy = "http";
  r.stages.push_back(s);
  return r;
}

job_result failed(failure_code code, const std::string& strategy = "exec",
                  caf::timespan retry_after = caf::timespan{0}) {
  job_result r;
  r.name = "fetch";
  r.status = code == failure_code::timeout ? stage_status::timed_out : stage_status::failed;
  r.failure = code;
  r.strategy = strategy;
  r.retry_after = retry_after;
  r.finished_at = t0();
  if (code == failure_code::blocked) {
    r.http = http_stats{};
    r.http->status = 403;
  }
  return r;
}

} // namespace

TEST(RunningOrderRetryTest, RetriesWithTheScheduleThenGivesUp) {
  auto spec = issue_example();
  spec.max_attempts = 3;
  running_order o{one_stage(), {retry_policy{spec}}, supervision_spec{}, [] { return 0.0; }};
  o.start(t0());
  auto i = *o.next(caf::make_timestamp());
  o.attempt_started(i, t0());
  auto d1 = o.attempt_finished(i, failed(failure_code::exit_nonzero), t0() + 1s);
  EXPECT_EQ(d1.kind, attempt_decision::retry);
  EXPECT_EQ(d1.delay, caf::timespan{10s});
  EXPECT_EQ(o.record().stages[0].status, stage_status::retrying);
  EXPECT_EQ(o.record().stages[0].attempts[0].retry_delay, caf::timespan{10s});
  EXPECT_EQ(o.attempt_started(i, t0() + 11s).attempt, 2);
  auto d2 = o.attempt_finished(i, failed(failure_code::rate_limited, "exec", 60s), t0() + 12s);
  EXPECT_EQ(d2.kind, attempt_decision::retry);
  EXPECT_EQ(d2.delay, caf::timespan{60s}) << "Retry-After beats the 30 s backoff";
  o.attempt_started(i, t0() + 72s);
  auto d3 = o.attempt_finished(i, failed(failure_code::timeout), t0() + 73s);
  EXPECT_EQ(d3.kind, attempt_decision::stop) << "3 attempts used";
  EXPECT_EQ(o.record().stages[0].status, stage_status::timed_out);
  EXPECT_EQ(o.record().stages[0].attempts.size(), 3u);
  o.finish(t0() + 74s);
  EXPECT_EQ(o.exit_code(), exit_code::stage_timed_out);
  auto j = o.take_journal();
  bool gave_up = false;
  int scheduled = 0;
  for (auto& e : j.events) {
    gave_up = gave_up || e.message.find("giving up after 3 attempt(s)") != std::string::npos;
    if (e.message.find("retry scheduled in") != std::string::npos)
      ++scheduled;
  }
  EXPECT_TRUE(gave_up);
  EXPECT_EQ(scheduled, 2);
  EXPECT_EQ(j.attempts.back().attempt, 3);
  EXPECT_EQ(j.attempts.back().status, stage_status::timed_out);
  for (auto& a : j.attempts)
    EXPECT_FALSE(a.stats.empty());
}

TEST(RunningOrderRetryTest, BlockedHttpEscalatesToBrowserNeverBack) {
  auto spec = issue_example();
  spec.max_attempts = 3;
  spec.on = {failure_code::blocked};
  running_order o{one_stage(), {retry_policy{spec}}, supervision_spec{}, nullptr};
  o.start(t0());
  auto i = *o.next(caf::make_timestamp());
  EXPECT_EQ(o.attempt_started(i, t0()).strategy, "http");
  auto d = o.attempt_finished(i, failed(failure_code::blocked, "http"), t0());
  ASSERT_EQ(d.kind, attempt_decision::retry);
  EXPECT_EQ(d.strategy, "browser");
  EXPECT_EQ(o.attempt_started(i, t0() + 10s).strategy, "browser");
  auto d2 = o.attempt_finished(i, failed(failure_code::blocked, "browser"), t0() + 11s);
  ASSERT_EQ(d2.kind, attempt_decision::retry);
  EXPECT_EQ(o.attempt_started(i, t0() + 41s).strategy, "browser") << "a browser stays a browser";
}

TEST(RunningOrderRetryTest, CodesNotInOnAreNotRetried) {
  auto spec = issue_example();
  running_order o{one_stage(), {retry_policy{spec}}, supervision_spec{}, nullptr};
  o.start(t0());
  auto i = *o.next(caf::make_timestamp());
  o.attempt_started(i, t0());
  auto d = o.attempt_finished(i, failed(failure_code::spawn_failed), t0());
  EXPECT_EQ(d.kind, attempt_decision::stop);
  auto j = o.take_journal();
  bool said = false;
  for (auto& e : j.events)
    said = said || e.message == "not retried: spawn_failed is not in retry.on";
  EXPECT_TRUE(said);
}

TEST(RunningOrderRetryTest, TheSupervisionBudgetStopsARunThatKeepsFailing) {
  auto spec = issue_example();
  spec.max_attempts = 50;
  spec.backoff.initial = 1s;
  running_order o{one_stage(), {retry_policy{spec}}, supervision_spec{2, 10min}, nullptr};
  o.start(t0());
  auto i = *o.next(caf::make_timestamp());
  auto t = t0();
  int retries = 0;
  for (;;) {
    o.attempt_started(i, t);
    auto d = o.attempt_finished(i, failed(failure_code::network), t);
    if (d.kind != attempt_decision::retry)
      break;
    ++retries;
    t += 1s;
  }
  EXPECT_EQ(retries, 2);
  o.finish(t);
  EXPECT_EQ(o.record().status, run_status::failed);
  EXPECT_NE(o.record().reason.find("supervision budget exhausted: more than 2 retries within 600s"),
            std::string::npos)
    << o.record().reason;
}

TEST(RunningOrderRetryTest, CancelWhileWaitingForARetryCancelsTheStage) {
  auto spec = issue_example();
  running_order o{one_stage(), {retry_policy{spec}}, supervision_spec{}, nullptr};
  o.start(t0());
  auto i = *o.next(caf::make_timestamp());
  o.attempt_started(i, t0());
  ASSERT_EQ(o.attempt_finished(i, failed(failure_code::network), t0()).kind,
            attempt_decision::retry);
  o.cancel(t0() + 1s);
  o.finish(t0() + 1s);
  EXPECT_EQ(o.record().stages[0].status, stage_status::cancelled);
  EXPECT_EQ(o.exit_code(), exit_code::cancelled);
  auto jobs = o.take_journal().jobs;
  ASSERT_FALSE(jobs.empty());
  EXPECT_EQ(jobs.back().status, stage_status::cancelled) << "the store hears of it";
}
