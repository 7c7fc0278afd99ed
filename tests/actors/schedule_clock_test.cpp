// schedule_clock: due ticks, missed ticks and catch-up, walking time by hand.
#include "actors/schedule_clock.hpp"

#include "messages/json.hpp"

#include <gtest/gtest.h>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

caf::timestamp at(const std::string& iso) {
  auto t = parse_iso8601(iso);
  EXPECT_TRUE(t) << iso;
  return t ? *t : caf::timestamp{};
}

std::vector<std::string> text(const std::vector<caf::timestamp>& ts) {
  std::vector<std::string> out;
  for (auto& t : ts)
    out.push_back(iso8601(t).substr(11, 8));  // HH:MM:SS
  return out;
}

schedule_timing every_minute(catch_up_policy p) {
  schedule_timing t;
  t.kind = schedule_kind::interval;
  t.anchor = at("2026-11-24T10:00:00.000Z");
  t.every = 1min;
  t.catch_up = p;
  return t;
}

using strings = std::vector<std::string>;

} // namespace

TEST(ScheduleClockTest, IntervalTicksFromTheAnchor) {
  auto t = every_minute(catch_up_policy::one);
  EXPECT_EQ(iso8601(*next_tick(t, at("2026-11-24T09:00:00.000Z"))), "2026-11-24T10:00:00.000Z");
  EXPECT_EQ(iso8601(*next_tick(t, at("2026-11-24T10:00:00.000Z"))), "2026-11-24T10:01:00.000Z");
  EXPECT_EQ(iso8601(*next_tick(t, at("2026-11-24T10:07:30.000Z"))), "2026-11-24T10:08:00.000Z");
}

TEST(ScheduleClockTest, ADueTickIsLaunchedOnceAndTheNextOneFollows) {
  auto t = every_minute(catch_up_policy::none);
  auto d = decide(t, at("2026-11-24T10:05:00.000Z"), at("2026-11-24T10:05:00.200Z"));
  EXPECT_EQ(text(d.launch), strings{"10:05:00"});
  EXPECT_TRUE(d.skipped.empty());
  EXPECT_EQ(iso8601(*d.next_run_at), "2026-11-24T10:06:00.000Z");
  // Not yet due: nothing.
  d = decide(t, at("2026-11-24T10:06:00.000Z"), at("2026-11-24T10:05:59.000Z"));
  EXPECT_TRUE(d.launch.empty());
  EXPECT_EQ(iso8601(*d.next_run_at), "2026-11-24T10:06:00.000Z");
}

TEST(ScheduleClockTest, MissedTicksFollowTheCatchUpPolicy) {
  // Every coordinator was down from 10:00 to 10:04:30; ticks 10:00..10:04.
  auto from = at("2026-11-24T10:00:00.000Z");
  auto now = at("2026-11-24T10:04:30.000Z");
  auto none = decide(every_minute(catch_up_policy::none), from, now);
  EXPECT_EQ(text(none.launch), strings{"10:04:00"}) << "within grace: not missed";
  EXPECT_EQ(text(none.skipped), (strings{"10:00:00", "10:01:00", "10:02:00", "10:03:00"}));
  auto one = decide(every_minute(catch_up_policy::one), from, now);
  EXPECT_EQ(text(one.launch), strings{"10:04:00"}) << "a due tick within grace stands for the rest";
  EXPECT_EQ(one.skipped.size(), 4u);
  auto all = decide(every_minute(catch_up_policy::all), from, now);
  EXPECT_EQ(text(all.launch),
            (strings{"10:00:00", "10:01:00", "10:02:00", "10:03:00", "10:04:00"}));
  EXPECT_TRUE(all.skipped.empty());
  EXPECT_EQ(iso8601(*all.next_run_at), "2026-11-24T10:05:00.000Z");
  // Down past every grace: `one` launches the latest missed tick only.
  auto later = at("2026-11-24T10:04:30.000Z") + 2min;  // 10:06:30, ticks to 10:06
  auto t = every_minute(catch_up_policy::one);
  t.grace = 10s;
  auto d = decide(t, from, later);
  EXPECT_EQ(text(d.launch), strings{"10:06:00"}) << "10:06 is 30 s old: missed, and the latest";
  EXPECT_EQ(d.skipped.size(), 6u);
  t.catch_up = catch_up_policy::all;
  t.max_catch_up = 3;
  d = decide(t, from, later);
  EXPECT_EQ(text(d.launch), (strings{"10:04:00", "10:05:00", "10:06:00"}));
  EXPECT_EQ(text(d.skipped), (strings{"10:00:00", "10:01:00", "10:02:00", "10:03:00"}));
}

TEST(ScheduleClockTest, OnceIsDueOnceAndThenDone) {
  schedule_timing t;
  t.kind = schedule_kind::once;
  t.at = at("2026-11-24T12:00:00.000Z");
  auto first = next_tick(t, at("2026-11-24T11:00:00.000Z"));
  ASSERT_TRUE(first);
  auto d = decide(t, *first, at("2026-11-24T12:00:01.000Z"));
  EXPECT_EQ(text(d.launch), strings{"12:00:00"});
  EXPECT_FALSE(d.next_run_at) << "a once schedule is done after its tick";
}

TEST(ScheduleClockTest, CronSchedulesWalkTheirOwnTicks) {
  schedule_timing t;
  t.kind = schedule_kind::cron;
  t.cron = *parse_cron("*/15 * * * *");
  t.catch_up = catch_up_policy::all;
  auto d = decide(t, at("2026-11-24T10:00:00.000Z"), at("2026-11-24T10:40:00.000Z"));
  EXPECT_EQ(text(d.launch), (strings{"10:00:00", "10:15:00", "10:30:00"}));
  EXPECT_EQ(iso8601(*d.next_run_at), "2026-11-24T10:45:00.000Z");
}
