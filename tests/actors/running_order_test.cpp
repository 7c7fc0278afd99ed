// running_order: fail-fast, skipping, cancellation and exit codes, with no
// actor system (plain decision logic).
#include "actors/running_order.hpp"

#include <gtest/gtest.h>

using namespace troupe;

namespace {

run_record three_stages(bool third_enabled = true) {
  run_record r;
  for (auto name : {"a", "b", "c"}) {
    stage_record s;
    s.name = name;
    r.stages.push_back(s);
  }
  r.stages[2].optional = !third_enabled;
  r.stages[2].enabled = third_enabled;
  return r;
}

job_result result(const std::string& name, stage_status st,
                  failure_code f = failure_code::none) {
  job_result r;
  r.name = name;
  r.status = st;
  r.failure = f;
  r.max_rss_bytes = 1000;
  r.cpu_seconds = 0.5;
  return r;
}

void run_ok(running_order& o, size_t i) {
  o.attempt_started(i, caf::make_timestamp());
  o.attempt_finished(i, result(o.record().stages[i].name, stage_status::succeeded), caf::make_timestamp());
}

} // namespace

TEST(RunningOrderTest, RunsStagesInOrderAndSucceeds) {
  running_order o{three_stages()};
  for (size_t want = 0; want < 3; ++want) {
    auto i = o.next();
    ASSERT_TRUE(i);
    EXPECT_EQ(*i, want);
    run_ok(o, *i);
  }
  EXPECT_FALSE(o.next());
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::succeeded);
  EXPECT_EQ(o.exit_code(), exit_code::ok);
  EXPECT_EQ(o.record().stages[0].resources.peak_rss_bytes, 1000);
}

TEST(RunningOrderTest, DisabledOptionalStageIsSkippedWithAReason) {
  running_order o{three_stages(false)};
  run_ok(o, *o.next());
  run_ok(o, *o.next());
  EXPECT_FALSE(o.next());
  EXPECT_EQ(o.record().stages[2].status, stage_status::skipped);
  EXPECT_NE(o.record().stages[2].error.find("--enable c"), std::string::npos);
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.exit_code(), exit_code::ok);
}

TEST(RunningOrderTest, FailureStopsTheRunAndSkipsTheRest) {
  running_order o{three_stages()};
  run_ok(o, *o.next());
  auto i = *o.next();
  o.attempt_started(i, caf::make_timestamp());
  o.attempt_finished(i, result("b", stage_status::failed, failure_code::exit_nonzero), caf::make_timestamp());
  EXPECT_FALSE(o.next());
  EXPECT_EQ(o.record().stages[2].status, stage_status::skipped);
  EXPECT_EQ(o.record().stages[2].error, "not run: stage 'b' failed");
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::failed);
  EXPECT_EQ(o.exit_code(), exit_code::stage_failed);
}

TEST(RunningOrderTest, TimeoutGivesExitCodeThree) {
  running_order o{three_stages()};
  auto i = *o.next();
  o.attempt_started(i, caf::make_timestamp());
  o.attempt_finished(i, result("a", stage_status::timed_out, failure_code::timeout), caf::make_timestamp());
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::timed_out);
  EXPECT_EQ(o.exit_code(), exit_code::stage_timed_out);
}

TEST(RunningOrderTest, CancelBetweenStagesStartsNothingMore) {
  running_order o{three_stages()};
  run_ok(o, *o.next());
  o.cancel(caf::make_timestamp());
  EXPECT_FALSE(o.next());
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::cancelled);
  EXPECT_EQ(o.record().stages[1].status, stage_status::skipped);
  EXPECT_EQ(o.record().stages[1].error, "run cancelled");
  EXPECT_EQ(o.exit_code(), exit_code::cancelled);
}

TEST(RunningOrderTest, LateResultForAStageNotRunningIsIgnored) {
  running_order o{three_stages()};
  auto i = *o.next();
  o.attempt_started(i, caf::make_timestamp());
  o.attempt_finished(i, result("a", stage_status::succeeded), caf::make_timestamp());
  o.attempt_finished(i, result("a", stage_status::failed, failure_code::lost), caf::make_timestamp());
  EXPECT_EQ(o.record().stages[0].status, stage_status::succeeded);
  EXPECT_TRUE(o.next());
}

TEST(RunningOrderTest, SamplesRaiseThePeak) {
  running_order o{three_stages()};
  auto i = *o.next();
  o.attempt_started(i, caf::make_timestamp());
  snapshot s;
  s.process = tree_figures{{1, 2}, 5000, 2.0};
  o.stage_sample(i, s);
  o.attempt_finished(i, result("a", stage_status::succeeded), caf::make_timestamp());
  const auto& r = o.record().stages[0].resources;
  EXPECT_EQ(r.samples, 1);
  EXPECT_EQ(r.peak_rss_bytes, 5000);
  EXPECT_DOUBLE_EQ(r.cpu_seconds, 2.0);
}
