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
    auto i = o.next(caf::make_timestamp());
    ASSERT_TRUE(i);
    EXPECT_EQ(*i, want);
    run_ok(o, *i);
  }
  EXPECT_FALSE(o.next(caf::make_timestamp()));
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::succeeded);
  EXPECT_EQ(o.exit_code(), exit_code::ok);
  EXPECT_EQ(o.record().stages[0].resources.peak_rss_bytes, 1000);
}

TEST(RunningOrderTest, DisabledOptionalStageIsSkippedWithAReason) {
  running_order o{three_stages(false)};
  run_ok(o, *o.next(caf::make_timestamp()));
  run_ok(o, *o.next(caf::make_timestamp()));
  EXPECT_FALSE(o.next(caf::make_timestamp()));
  EXPECT_EQ(o.record().stages[2].status, stage_status::skipped);
  EXPECT_NE(o.record().stages[2].error.find("--enable c"), std::string::npos);
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.exit_code(), exit_code::ok);
}

TEST(RunningOrderTest, FailureStopsTheRunAndSkipsTheRest) {
  running_order o{three_stages()};
  run_ok(o, *o.next(caf::make_timestamp()));
  auto i = *o.next(caf::make_timestamp());
  o.attempt_started(i, caf::make_timestamp());
  o.attempt_finished(i, result("b", stage_status::failed, failure_code::exit_nonzero), caf::make_timestamp());
  EXPECT_FALSE(o.next(caf::make_timestamp()));
  EXPECT_EQ(o.record().stages[2].status, stage_status::skipped);
  EXPECT_EQ(o.record().stages[2].error, "not run: stage 'b' failed");
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::failed);
  EXPECT_EQ(o.exit_code(), exit_code::stage_failed);
}

TEST(RunningOrderTest, TimeoutGivesExitCodeThree) {
  running_order o{three_stages()};
  auto i = *o.next(caf::make_timestamp());
  o.attempt_started(i, caf::make_timestamp());
  o.attempt_finished(i, result("a", stage_status::timed_out, failure_code::timeout), caf::make_timestamp());
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::timed_out);
  EXPECT_EQ(o.exit_code(), exit_code::stage_timed_out);
}

TEST(RunningOrderTest, CancelBetweenStagesStartsNothingMore) {
  running_order o{three_stages()};
  run_ok(o, *o.next(caf::make_timestamp()));
  o.cancel(caf::make_timestamp());
  EXPECT_FALSE(o.next(caf::make_timestamp()));
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::cancelled);
  EXPECT_EQ(o.record().stages[1].status, stage_status::skipped);
  EXPECT_EQ(o.record().stages[1].error, "run cancelled");
  EXPECT_EQ(o.exit_code(), exit_code::cancelled);
}

TEST(RunningOrderTest, LateResultForAStageNotRunningIsIgnored) {
  running_order o{three_stages()};
  auto i = *o.next(caf::make_timestamp());
  o.attempt_started(i, caf::make_timestamp());
  o.attempt_finished(i, result("a", stage_status::succeeded), caf::make_timestamp());
  o.attempt_finished(i, result("a", stage_status::failed, failure_code::lost), caf::make_timestamp());
  EXPECT_EQ(o.record().stages[0].status, stage_status::succeeded);
  EXPECT_TRUE(o.next(caf::make_timestamp()));
}

TEST(RunningOrderTest, SamplesRaiseThePeak) {
  running_order o{three_stages()};
  auto i = *o.next(caf::make_timestamp());
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

// -- graphs (issue 16) --------------------------------------------------------

namespace {

// a -> (b, c) -> d
run_record diamond(int32_t max_parallel, bool keep_going = false) {
  run_record r;
  r.options.max_parallel = max_parallel;
  r.options.continue_on_failure = keep_going;
  std::vector<std::pair<const char*, std::vector<std::string>>> defs{
    {"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}, {"e", {"a"}}};
  for (auto& [name, deps] : defs) {
    stage_record s;
    s.name = name;
    s.depends_on = deps;
    r.stages.push_back(s);
  }
  return r;
}

std::vector<size_t> started(running_order& o) {
  auto r = o.ready(caf::make_timestamp());
  for (auto i : r)
    o.attempt_started(i, caf::make_timestamp());
  return r;
}

void end(running_order& o, size_t i, stage_status st) {
  o.attempt_finished(i, result(o.record().stages[i].name, st,
                               st == stage_status::succeeded ? failure_code::none
                                                             : failure_code::exit_nonzero),
                     caf::make_timestamp());
}

} // namespace

TEST(RunningOrderGraphTest, AStageStartsWhenAllItDependsOnSucceeded) {
  running_order o{diamond(8)};
  EXPECT_EQ(started(o), (std::vector<size_t>{0}));
  EXPECT_TRUE(o.ready(caf::make_timestamp()).empty()) << "b, c and e wait for a";
  end(o, 0, stage_status::succeeded);
  EXPECT_EQ(started(o), (std::vector<size_t>{1, 2, 4})) << "b, c and e at once";
  end(o, 1, stage_status::succeeded);
  EXPECT_TRUE(o.ready(caf::make_timestamp()).empty()) << "d waits for c too";
  end(o, 2, stage_status::succeeded);
  EXPECT_EQ(started(o), (std::vector<size_t>{3}));
  end(o, 3, stage_status::succeeded);
  end(o, 4, stage_status::succeeded);
  EXPECT_EQ(o.in_flight(), 0u);
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::succeeded);
}

TEST(RunningOrderGraphTest, MaxParallelBoundsWhatIsInFlight) {
  running_order o{diamond(2)};
  run_ok(o, *o.next(caf::make_timestamp()));
  EXPECT_EQ(started(o), (std::vector<size_t>{1, 2}));
  EXPECT_TRUE(o.ready(caf::make_timestamp()).empty()) << "e waits for a free place";
  end(o, 1, stage_status::succeeded);
  EXPECT_EQ(started(o), (std::vector<size_t>{4}));
  EXPECT_EQ(o.in_flight(), 2u);
}

TEST(RunningOrderGraphTest, FailFastStartsNothingNewAndSkipsWhatDidNotRun) {
  running_order o{diamond(8)};
  run_ok(o, *o.next(caf::make_timestamp()));
  EXPECT_EQ(started(o), (std::vector<size_t>{1, 2, 4}));
  end(o, 1, stage_status::failed);
  EXPECT_TRUE(o.ready(caf::make_timestamp()).empty());
  EXPECT_TRUE(o.stopping());
  EXPECT_EQ(o.record().stages[3].status, stage_status::skipped);
  EXPECT_EQ(o.in_flight(), 2u) << "c and e still run and finish";
  end(o, 2, stage_status::succeeded);
  end(o, 4, stage_status::succeeded);
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::failed);
  EXPECT_EQ(o.record().stages[2].status, stage_status::succeeded);
  EXPECT_EQ(o.record().stages[3].error, "not run: stage 'b' failed");
}

TEST(RunningOrderGraphTest, OnFailureContinueSkipsOnlyTheDependents) {
  running_order o{diamond(8, true)};
  run_ok(o, *o.next(caf::make_timestamp()));
  EXPECT_EQ(started(o), (std::vector<size_t>{1, 2, 4}));
  end(o, 1, stage_status::failed);
  EXPECT_FALSE(o.stopping());
  end(o, 2, stage_status::succeeded);
  EXPECT_TRUE(o.ready(caf::make_timestamp()).empty()) << "d depends on the failed b";
  const auto& d = o.record().stages[3];
  EXPECT_EQ(d.status, stage_status::skipped);
  EXPECT_EQ(d.error, "not run: depends on 'b', which failed");
  end(o, 4, stage_status::succeeded);
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::failed);
  EXPECT_EQ(o.record().reason, "stage 'b' failed: exit_nonzero");
  EXPECT_EQ(o.record().stages[4].status, stage_status::succeeded) << "e ran: it needs only a";
}

TEST(RunningOrderGraphTest, AStageHandedOutButNotStartedIsSkippedWhenTheRunStops) {
  running_order o{diamond(8)};
  run_ok(o, *o.next(caf::make_timestamp()));
  auto r = o.ready(caf::make_timestamp());
  ASSERT_EQ(r.size(), 3u);
  o.attempt_started(1, caf::make_timestamp());
  o.cancel(caf::make_timestamp());
  o.release(2);
  o.release(4);
  EXPECT_EQ(o.in_flight(), 1u);
  end(o, 1, stage_status::cancelled);
  o.finish(caf::make_timestamp());
  EXPECT_EQ(o.record().status, run_status::cancelled);
  EXPECT_EQ(o.record().stages[2].status, stage_status::skipped);
  EXPECT_EQ(o.record().stages[4].error, "not run: stage 'b' cancelled");
}

TEST(RunningOrderGraphTest, AStageRunAgainGetsItsWholeRetryBudgetAndGoesOnNumbering) {
  // Stage a failed once before (a rerun or a resume): it is pending again.
  run_record rec;
  stage_record s;
  s.name = "a";
  attempt_record before;
  before.attempt = 1;
  before.status = stage_status::failed;
  before.failure = failure_code::exit_nonzero;
  before.started_at = caf::make_timestamp();
  s.attempts.push_back(before);
  s.started_at = before.started_at;
  rec.stages.push_back(s);
  retry_spec spec;
  spec.max_attempts = 2;
  spec.on = {failure_code::exit_nonzero};
  running_order o{rec, {retry_policy{spec}}};
  EXPECT_EQ(o.record().stages[0].max_attempts, 3) << "1 before + 2 for this try";
  EXPECT_FALSE(o.record().stages[0].started_at) << "this try's times";
  auto i = o.next(caf::make_timestamp());
  ASSERT_TRUE(i);
  EXPECT_EQ(o.attempt_started(*i, caf::make_timestamp()).attempt, 2);
  auto d = o.attempt_finished(*i, result("a", stage_status::failed, failure_code::exit_nonzero),
                              caf::make_timestamp());
  EXPECT_EQ(d.kind, attempt_decision::retry) << "its first attempt of this try may be retried";
  o.attempt_started(*i, caf::make_timestamp());
  d = o.attempt_finished(*i, result("a", stage_status::failed, failure_code::exit_nonzero),
                         caf::make_timestamp());
  EXPECT_EQ(d.kind, attempt_decision::stop) << "two attempts in this try: the budget is spent";
  EXPECT_EQ(o.record().stages[0].attempts.size(), 3u);
}

// Time comes in as arguments: a skip decided in ready() and one at finish()
// carry the times given, not the wall clock's.
TEST(RunningOrderTest, EveryRecordedTimeIsTheOneGiven) {
  running_order o{three_stages(false)};
  const caf::timestamp t1{std::chrono::hours(1)};
  const caf::timestamp t2{std::chrono::hours(2)};
  o.start(t1);
  run_ok(o, *o.next(t1));
  o.take_journal();
  o.cancel(t1);
  o.finish(t2);
  auto j = o.take_journal();
  ASSERT_FALSE(j.events.empty());
  for (auto& e : j.events)
    EXPECT_TRUE(e.ts == t1 || e.ts == t2) << e.message;
  EXPECT_EQ(o.record().finished_at, caf::optional<caf::timestamp>{t2});
  running_order later{three_stages(false)};
  later.start(t1);
  later.take_journal();
  ASSERT_TRUE(later.next(t2));  // a; c (optional, not enabled) is skipped now
  bool seen = false;
  for (auto& e : later.take_journal().events)
    if (e.message.find("optional stage not enabled") != std::string::npos) {
      seen = true;
      EXPECT_EQ(e.ts, t2);
    }
  EXPECT_TRUE(seen);
}
