// The store contract: one suite, run against SQLite (store_sqlite_test.cpp)
// and a real PostgreSQL server (store_pgtest.cpp). A backend is a type with
// `static std::string url(const std::string& test)`; tests keep apart by
// giving every run a unique id and pipeline name.
#pragma once

#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <tuple>

namespace troupe::testing {

inline std::string unique(const std::string& stem) {
  static std::atomic<int> n{0};
  static const auto salt = std::random_device{}();
  return stem + "-" + std::to_string(salt) + "-" + std::to_string(++n);
}

inline run_row make_run(const std::string& id, const std::string& pipeline,
                        run_status st = run_status::queued) {
  run_row r;
  r.run_id = id;
  r.pipeline = pipeline;
  r.pipeline_file = "/pipes/" + pipeline + ".yaml";
  r.run_dir = "/runs/" + id;
  r.status = st;
  r.host = "contract-host";
  r.pid = 4242;
  r.created_at = caf::make_timestamp();
  r.updated_at = r.created_at;
  return r;
}

inline job_row make_job(const std::string& run, const std::string& job, int32_t pos,
                        stage_status st) {
  job_row j;
  j.run_id = run;
  j.job = job;
  j.position = pos;
  j.status = st;
  return j;
}

inline event_row make_event(const std::string& run, const std::string& msg,
                            event_level level = event_level::info) {
  event_row e;
  e.ts = caf::make_timestamp();
  e.run_id = run;
  e.level = level;
  e.message = msg;
  e.meta = R"({"k":1})";
  return e;
}

template <class Backend>
class StoreContract : public ::testing::Test {
protected:
  std::unique_ptr<store> open() {
    auto s = open_store(Backend::url(name()));
    EXPECT_TRUE(s) << describe(s.error());
    return s ? std::move(*s) : nullptr;
  }
  std::string name() const {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
};

TYPED_TEST_SUITE_P(StoreContract);

TYPED_TEST_P(StoreContract, MigrationsAreAppliedOnceAndAgainIsANoOp) {
  auto a = this->open();
  ASSERT_TRUE(a);
  auto b = this->open();  // a second start on the same database
  ASSERT_TRUE(b);
  auto v = b->schema_version();
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(*v, 11);
}

TYPED_TEST_P(StoreContract, RunsJobsAttemptsAndEventsRoundTrip) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto id = unique("run");
  auto pipe = unique("pipe");
  store_batch b;
  b.runs.push_back(make_run(id, pipe, run_status::running));
  b.runs.back().started_at = b.runs.back().created_at;
  b.runs.back().params = R"({"limit":"10"})";
  b.jobs.push_back(make_job(id, "fetch", 0, stage_status::running));
  b.jobs.push_back(make_job(id, "parse", 1, stage_status::pending));
  attempt_row a;
  a.run_id = id;
  a.job = "fetch";
  a.attempt = 1;
  a.status = stage_status::running;
  a.strategy = "http";
  a.started_at = caf::make_timestamp();
  b.attempts.push_back(a);
  b.events.push_back(make_event(id, "run started"));
  auto res = db->apply(b);
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->written, 5);
  EXPECT_TRUE(res->refused.empty());

  // The attempt fails with a classified code, the job retries.
  store_batch c;
  a.status = stage_status::failed;
  a.failure = failure_code::rate_limited;
  a.http_status = 429;
  a.error = "HTTP 429";
  a.finished_at = caf::make_timestamp();
  a.duration_ms = 12;
  a.stats = R"({"http":{"status":429}})";
  c.attempts.push_back(a);
  c.jobs.push_back(make_job(id, "fetch", 0, stage_status::retrying));
  c.jobs.back().attempts = 1;
  c.jobs.back().failure = failure_code::rate_limited;
  c.events.push_back(make_event(id, "retry scheduled", event_level::warn));
  c.events.back().job = "fetch";
  c.events.back().attempt = 1;
  ASSERT_TRUE(db->apply(c));

  auto runs = db->runs(run_filter{std::nullopt, pipe, 10, {}});
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].run_id, id);
  EXPECT_EQ((*runs)[0].status, run_status::running);
  EXPECT_EQ((*runs)[0].host, "contract-host");
  EXPECT_EQ((*runs)[0].pid, 4242);
  EXPECT_EQ((*runs)[0].params, R"({"limit":"10"})") << "the run's parameter values";
  EXPECT_TRUE((*runs)[0].started_at);
  EXPECT_FALSE((*runs)[0].finished_at);
  auto jobs = db->jobs(id);
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].job, "fetch");
  EXPECT_EQ((*jobs)[0].status, stage_status::retrying);
  EXPECT_EQ((*jobs)[0].failure, failure_code::rate_limited);
  EXPECT_EQ((*jobs)[1].status, stage_status::pending);
  auto attempts = db->attempts(id);
  ASSERT_TRUE(attempts);
  ASSERT_EQ(attempts->size(), 1u);
  const auto& got = (*attempts)[0];
  EXPECT_EQ(got.status, stage_status::failed);
  EXPECT_EQ(got.failure, failure_code::rate_limited);
  EXPECT_EQ(got.http_status, caf::optional<int32_t>{429});
  EXPECT_FALSE(got.exit_code);
  EXPECT_EQ(got.duration_ms, 12);
  EXPECT_EQ(got.stats, R"({"http":{"status":429}})");
  EXPECT_EQ(got.strategy, "http");
  auto events = db->events(id, event_level::info);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].message, "run started");
  EXPECT_EQ((*events)[0].meta, R"({"k":1})");
  EXPECT_LT((*events)[0].id, (*events)[1].id);
  EXPECT_EQ((*events)[1].job, "fetch");
  EXPECT_EQ((*events)[1].attempt, 1);
  auto warn = db->events(id, event_level::warn);
  ASSERT_TRUE(warn);
  EXPECT_EQ(warn->size(), 1u);
}

TYPED_TEST_P(StoreContract, IllegalTransitionsAreRefusedAndTheRestIsWritten) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto id = unique("run");
  store_batch b;
  b.runs.push_back(make_run(id, unique("pipe"), run_status::running));
  b.jobs.push_back(make_job(id, "a", 0, stage_status::succeeded));
  ASSERT_TRUE(db->apply(b));
  store_batch bad;
  bad.runs.push_back(make_run(id, "x", run_status::succeeded));  // legal
  bad.jobs.push_back(make_job(id, "a", 0, stage_status::running));  // succeeded -> running: no
  bad.jobs.push_back(make_job(id, "b", 1, stage_status::pending));  // new: fine
  auto res = db->apply(bad);
  ASSERT_TRUE(res) << describe(res.error());
  ASSERT_EQ(res->refused.size(), 1u);
  EXPECT_NE(res->refused[0].find("succeeded -> running"), std::string::npos) << res->refused[0];
  auto jobs = db->jobs(id);
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].status, stage_status::succeeded) << "the refused change was not written";
  // A finished run cannot start again.
  store_batch again;
  again.runs.push_back(make_run(id, "x", run_status::running));
  res = db->apply(again);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->refused.size(), 1u);
  auto runs = db->runs_by_prefix(id, 5);
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].status, run_status::succeeded);
  // Each refusal left a warn event.
  auto warns = db->events(id, event_level::warn);
  ASSERT_TRUE(warns);
  EXPECT_EQ(warns->size(), 2u);
}

// One batch that holds a row's whole life (a group commit of a fast run):
// each row is checked against the ones before it in the batch, the last
// accepted one is what is stored, and a regression inside the batch is
// refused. (PostgreSQL reads and writes such a batch with multi-row
// statements; SQLite row by row: the same outcome.)
TYPED_TEST_P(StoreContract, ABatchIsCheckedRowAfterRowInItsOwnOrder) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto id = unique("run");
  auto pipe = unique("pipe");
  store_batch b;
  b.runs.push_back(make_run(id, pipe, run_status::queued));
  b.runs.push_back(make_run(id, pipe, run_status::running));
  b.runs.back().owner = "earlier-owner";
  b.runs.push_back(make_run(id, pipe, run_status::succeeded));
  b.runs.back().owner = "later-owner";
  b.runs.push_back(make_run(id, pipe, run_status::running));  // succeeded -> running: no
  b.jobs.push_back(make_job(id, "a", 0, stage_status::pending));
  b.jobs.push_back(make_job(id, "a", 0, stage_status::running));
  b.jobs.push_back(make_job(id, "a", 0, stage_status::succeeded));
  b.jobs.back().attempts = 1;
  b.jobs.push_back(make_job(id, "a", 0, stage_status::retrying));  // succeeded -> retrying: no
  attempt_row a;
  a.run_id = id;
  a.job = "a";
  a.attempt = 1;
  a.status = stage_status::running;
  a.strategy = "exec";
  b.attempts.push_back(a);
  a.status = stage_status::succeeded;
  a.exit_code = 0;
  a.duration_ms = 12;
  b.attempts.push_back(a);
  b.events.push_back(make_event(id, "one"));
  b.events.push_back(make_event(id, "two"));
  auto res = db->apply(b);
  ASSERT_TRUE(res) << describe(res.error());
  ASSERT_EQ(res->refused.size(), 2u);
  EXPECT_NE(res->refused[0].find("succeeded -> running"), std::string::npos) << res->refused[0];
  EXPECT_NE(res->refused[1].find("succeeded -> retrying"), std::string::npos) << res->refused[1];
  EXPECT_EQ(res->written, 3 + 3 + 2 + 2);
  auto runs = db->runs_by_prefix(id, 1);
  ASSERT_TRUE(runs);
  EXPECT_EQ(runs->at(0).status, run_status::succeeded);
  EXPECT_EQ(runs->at(0).owner, "later-owner") << "the last accepted row's columns";
  EXPECT_EQ(runs->at(0).pipeline, pipe);
  auto jobs = db->jobs(id);
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ(jobs->at(0).status, stage_status::succeeded);
  EXPECT_EQ(jobs->at(0).attempts, 1);
  auto attempts = db->attempts(id);
  ASSERT_TRUE(attempts);
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ(attempts->at(0).status, stage_status::succeeded);
  EXPECT_EQ(attempts->at(0).duration_ms, 12);
  auto events = db->events(id, event_level::info);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 4u) << "two refusals, then the batch's two";
  EXPECT_EQ(events->at(2).message, "one");
  EXPECT_EQ(events->at(3).message, "two");
}

// Fencing: whoever takes a run over writes at the next epoch; from then on
// rows its old owner still sends are refused, and say why.
TYPED_TEST_P(StoreContract, AStaleEpochIsRefusedAfterATakeover) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto id = unique("run");
  store_batch start;
  start.runs.push_back(make_run(id, unique("pipe"), run_status::running));
  start.jobs.push_back(make_job(id, "a", 0, stage_status::running));
  ASSERT_TRUE(db->apply(start));
  // The taker-over: epoch 2 for the run and its rows, in one batch.
  store_batch takeover;
  auto r = make_run(id, "x", run_status::failed);
  r.epoch = 2;
  takeover.runs.push_back(r);
  auto j = make_job(id, "a", 0, stage_status::failed);
  j.epoch = 2;
  takeover.jobs.push_back(j);
  auto res = db->apply(takeover);
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_TRUE(res->refused.empty()) << res->refused[0];
  // The old owner, not dead after all, goes on at epoch 1.
  store_batch stale;
  stale.jobs.push_back(make_job(id, "a", 0, stage_status::failed));
  auto late = make_job(id, "b", 1, stage_status::succeeded);
  stale.jobs.push_back(late);
  auto old_run = make_run(id, "x", run_status::failed);
  stale.runs.push_back(old_run);
  res = db->apply(stale);
  ASSERT_TRUE(res) << describe(res.error());
  ASSERT_EQ(res->refused.size(), 3u);
  for (auto& why : res->refused)
    EXPECT_NE(why.find("written at epoch 1, the run is at epoch 2"), std::string::npos) << why;
  auto jobs = db->jobs(id);
  ASSERT_TRUE(jobs);
  EXPECT_EQ(jobs->size(), 1u) << "the stale writer's new job was not written";
  auto runs = db->runs_by_prefix(id, 1);
  ASSERT_TRUE(runs && runs->size() == 1);
  EXPECT_EQ((*runs)[0].epoch, 2);
  // Skipping an epoch is not a takeover either.
  store_batch jump;
  auto far = make_run(id, "x", run_status::failed);
  far.epoch = 4;
  jump.runs.push_back(far);
  res = db->apply(jump);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->refused.size(), 1u);
}

TYPED_TEST_P(StoreContract, ATransactionThatFailsHalfWayLeavesNothing) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto id = unique("run");
  store_batch b;
  b.runs.push_back(make_run(id, unique("pipe")));
  b.jobs.push_back(make_job(id, "a", 0, stage_status::pending));
  b.events.push_back(make_event(id, "first"));
  b.events.push_back(make_event(unique("no-such-run"), "points at nothing"));  // FK violation
  auto res = db->apply(b);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code(), static_cast<uint8_t>(errc::store_error));
  auto runs = db->runs_by_prefix(id, 5);
  ASSERT_TRUE(runs);
  EXPECT_TRUE(runs->empty()) << "the run written before the failure was rolled back";
  auto jobs = db->jobs(id);
  ASSERT_TRUE(jobs);
  EXPECT_TRUE(jobs->empty());
  // The store is still usable after the failure.
  store_batch ok;
  ok.runs.push_back(make_run(id, "p"));
  EXPECT_TRUE(db->apply(ok));
}

TYPED_TEST_P(StoreContract, ConcurrentWritersLoseNothing) {
  constexpr int writers = 4;
  constexpr int batches = 40;
  auto pipe = unique("pipe");
  std::vector<std::string> ids;
  for (int w = 0; w < writers; ++w)
    ids.push_back(unique("run"));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      auto db = this->open();  // one connection per writer
      if (!db) {
        ++failures;
        return;
      }
      for (int k = 0; k < batches; ++k) {
        store_batch b;
        if (k == 0)
          b.runs.push_back(make_run(ids[w], pipe, run_status::running));
        b.events.push_back(make_event(ids[w], "event " + std::to_string(k)));
        b.events.push_back(make_event(ids[w], "event " + std::to_string(k) + "b"));
        if (!db->apply(b))
          ++failures;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  auto db = this->open();
  ASSERT_TRUE(db);
  auto runs = db->runs(run_filter{run_status::running, pipe, 100, {}});
  ASSERT_TRUE(runs);
  EXPECT_EQ(runs->size(), static_cast<size_t>(writers));
  for (auto& id : ids) {
    auto events = db->events(id, event_level::info);
    ASSERT_TRUE(events);
    ASSERT_EQ(events->size(), static_cast<size_t>(2 * batches)) << id;
    for (int k = 0; k < batches; ++k)
      EXPECT_EQ((*events)[2 * k].message, "event " + std::to_string(k)) << "order kept";
  }
}

TYPED_TEST_P(StoreContract, FiltersLimitsPrefixesAndUnfinishedRuns) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto pipe = unique("pipe");
  auto stem = unique("prefix");
  store_batch b;
  b.runs.push_back(make_run(stem + "-a", pipe, run_status::running));
  b.runs.push_back(make_run(stem + "-b", pipe, run_status::queued));
  b.runs.push_back(make_run(stem + "-c", pipe, run_status::running));
  ASSERT_TRUE(db->apply(b));
  store_batch done;
  done.runs.push_back(make_run(stem + "-c", pipe, run_status::failed));
  ASSERT_TRUE(db->apply(done));
  auto running = db->runs(run_filter{run_status::running, pipe, 10, {}});
  ASSERT_TRUE(running);
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ((*running)[0].run_id, stem + "-a");
  auto limited = db->runs(run_filter{std::nullopt, pipe, 2, {}});
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->size(), 2u);
  auto prefixed = db->runs_by_prefix(stem, 10);
  ASSERT_TRUE(prefixed);
  EXPECT_EQ(prefixed->size(), 3u);
  auto unfinished = db->unfinished_runs();
  ASSERT_TRUE(unfinished);
  int mine = 0;
  for (auto& r : *unfinished)
    if (r.pipeline == pipe)
      ++mine;
  EXPECT_EQ(mine, 2) << "queued and running, not failed";
}

// Schedules: a due row is claimed by one of many concurrent claimers; the
// claim's finish inserts the tick's run once, moves next_run_at on and
// releases; an expired claim is taken over and its late finish refused.
TYPED_TEST_P(StoreContract, ADueScheduleIsClaimedOnceAndItsTickLaunchedOnce) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto now = caf::make_timestamp();
  schedule_row s;
  s.id = unique("sch");
  s.pipeline = unique("pipe");
  s.kind = "interval";
  s.spec = "1m";
  s.anchor = now;
  s.next_run_at = now - std::chrono::seconds(1);
  s.created_at = s.updated_at = now;
  ASSERT_EQ(db->create_schedule(s), caf::none);
  // Eight claimers at once, each on its own connection: one wins.
  std::atomic<int> won{0};
  std::vector<std::thread> claimers;
  for (int i = 0; i < 8; ++i)
    claimers.emplace_back([&, i] {
      auto mine = this->open();
      auto c = mine->claim_due_schedules("coord-" + std::to_string(i), now,
                                         now + std::chrono::seconds(30), 100);
      ASSERT_TRUE(c) << describe(c.error());
      for (auto& x : *c)
        if (x.row.id == s.id)
          ++won;
    });
  for (auto& t : claimers)
    t.join();
  ASSERT_EQ(won.load(), 1);
  auto held = db->find_schedule(s.id);
  ASSERT_TRUE(held && *held);
  auto holder = (*held)->claimed_by;
  ASSERT_FALSE(holder.empty());
  // Not due again while claimed.
  auto again = db->claim_due_schedules("other", now, now + std::chrono::seconds(30), 100);
  ASSERT_TRUE(again);
  for (auto& x : *again)
    EXPECT_NE(x.row.id, s.id);
  // The holder finishes: one run for the tick, next_run_at moved, released.
  auto run = make_run(unique("tick"), s.pipeline);
  run.schedule_id = s.id;
  run.scheduled_for = s.next_run_at;
  caf::optional<caf::timestamp> next = now + std::chrono::minutes(1);
  auto done = db->finish_schedule_claim(s.id, holder, next, {run}, {});
  ASSERT_TRUE(done) << describe(done.error());
  EXPECT_TRUE(done->held);
  ASSERT_EQ(done->inserted.size(), 1u);
  auto after = db->find_schedule(s.id);
  ASSERT_TRUE(after && *after);
  EXPECT_TRUE((*after)->claimed_by.empty());
  EXPECT_EQ(iso8601(*(*after)->next_run_at), iso8601(*next));
  EXPECT_EQ((*after)->last_run_id, run.run_id);
  // The same tick once more (a bug, a replayed finish): not a second run.
  auto later = now + std::chrono::minutes(2);
  ASSERT_TRUE(db->claim_due_schedules("coord-x", later, later + std::chrono::seconds(30), 100));
  auto twin = make_run(unique("twin"), s.pipeline);
  twin.schedule_id = s.id;
  twin.scheduled_for = run.scheduled_for;
  auto dup = db->finish_schedule_claim(s.id, "coord-x", next, {twin}, {});
  ASSERT_TRUE(dup);
  EXPECT_TRUE(dup->held);
  EXPECT_TRUE(dup->inserted.empty()) << "a tick is launched once";
  auto active = db->active_runs_of(s.id);
  ASSERT_TRUE(active);
  EXPECT_EQ(active->size(), 1u);
  // An expired claim is taken over, and the old holder's finish is refused.
  auto t3 = now + std::chrono::minutes(3);
  ASSERT_TRUE(db->claim_due_schedules("slow", t3, t3 + std::chrono::seconds(1), 100));
  auto t4 = t3 + std::chrono::seconds(5);
  auto over = db->claim_due_schedules("fast", t4, t4 + std::chrono::seconds(30), 100);
  ASSERT_TRUE(over);
  bool took = false;
  for (auto& x : *over)
    if (x.row.id == s.id) {
      took = true;
      EXPECT_EQ(x.taken_from, "slow");
    }
  EXPECT_TRUE(took);
  auto stale = db->finish_schedule_claim(s.id, "slow", next, {}, {});
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale->held);
  auto events = db->schedule_events(s.id, 0, 100);
  ASSERT_TRUE(events);
  int taken = 0;
  for (auto& e : *events)
    taken += e.kind == "taken_over" ? 1 : 0;
  EXPECT_EQ(taken, 1);
  ASSERT_TRUE(db->delete_schedule(s.id));
  auto gone = db->find_schedule(s.id);
  ASSERT_TRUE(gone);
  EXPECT_FALSE(*gone);
}

// A lost owner's run is taken over by one coordinator only; pages of runs
// follow a cursor; events come after an id.
TYPED_TEST_P(StoreContract, TakeoversCursorsAndEventsAfterAnId) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto pipe = unique("pipe");
  store_batch b;
  for (int i = 0; i < 5; ++i) {
    b.runs.push_back(make_run(unique("page"), pipe));
    b.runs.back().owner = "dead:1:1";
    b.runs.back().created_at = caf::make_timestamp() + std::chrono::milliseconds(i);
  }
  for (int i = 0; i < 3; ++i)
    b.events.push_back(make_event(b.runs[0].run_id, "e" + std::to_string(i)));
  ASSERT_TRUE(db->apply(b));
  auto id = b.runs[0].run_id;
  auto first = db->take_over_run(id, "dead:1:1", 1, "me:2:2", caf::make_timestamp());
  auto second = db->take_over_run(id, "dead:1:1", 1, "you:3:3", caf::make_timestamp());
  ASSERT_TRUE(first && second);
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*second) << "one coordinator takes a run over";
  auto rows = db->runs_by_prefix(id, 1);
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->at(0).owner, "me:2:2");
  EXPECT_EQ(rows->at(0).epoch, 2);
  // A cancel request reaches the owner, and only for unfinished runs.
  auto asked = db->request_cancel(id, caf::make_timestamp());
  ASSERT_TRUE(asked);
  EXPECT_TRUE(*asked);
  auto mine = db->cancel_requests("me:2:2");
  ASSERT_TRUE(mine);
  EXPECT_EQ(*mine, std::vector<std::string>{id});
  auto theirs = db->cancel_requests("you:3:3");
  ASSERT_TRUE(theirs);
  EXPECT_TRUE(theirs->empty());
  auto none = db->request_cancel("no-such-run", caf::make_timestamp());
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 4; ++page) {
    run_filter f{std::nullopt, pipe, 2, cursor};
    auto got = db->runs(f);
    ASSERT_TRUE(got);
    for (auto& r : *got)
      seen.push_back(r.run_id);
    if (got->size() < 2)
      break;
    cursor = got->back().run_id;
  }
  ASSERT_EQ(seen.size(), 5u);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(seen[static_cast<size_t>(i)], b.runs[static_cast<size_t>(4 - i)].run_id) << "newest first";
  auto all = db->events_after(id, 0, 100);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  auto rest = db->events_after(id, (*all)[0].id, 100);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].message, "e1");
}

// One heartbeat per owner: its unfinished runs read it, nobody else's do.
TYPED_TEST_P(StoreContract, AnOwnersHeartbeatIsReadByItsUnfinishedRunsOnly) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto mine = unique("owner"), theirs = unique("owner");
  auto a = unique("run"), b = unique("run"), done = unique("run"), other = unique("run");
  store_batch batch;
  for (auto& [id, owner, st] : std::vector<std::tuple<std::string, std::string, run_status>>{
         {a, mine, run_status::queued},
         {b, mine, run_status::running},
         {done, mine, run_status::succeeded},
         {other, theirs, run_status::running}}) {
    batch.runs.push_back(make_run(id, "beat", st));
    batch.runs.back().owner = owner;
  }
  ASSERT_TRUE(db->apply(batch));
  auto before = [&](const std::string& id) {
    auto rows = db->runs_by_prefix(id, 1);
    EXPECT_TRUE(rows && rows->size() == 1);
    return rows->front().heartbeat_at;
  };
  auto other_was = before(other);
  auto done_was = before(done);
  auto later = caf::make_timestamp() + std::chrono::hours(1);
  ASSERT_FALSE(db->heartbeat(mine, later));
  auto beat = [&](const std::string& id) { return before(id); };
  ASSERT_TRUE(beat(a));
  EXPECT_EQ(iso8601(*beat(a)), iso8601(later)) << "a queued run reads its owner's beat";
  EXPECT_EQ(iso8601(*beat(b)), iso8601(later)) << "a running run reads its owner's beat";
  EXPECT_EQ(beat(done), done_was) << "a finished run does not";
  EXPECT_EQ(beat(other), other_was) << "another owner's run does not";
  auto unfinished = db->unfinished_runs();
  ASSERT_TRUE(unfinished);
  for (auto& r : *unfinished)
    if (r.run_id == a)
      EXPECT_EQ(iso8601(*r.heartbeat_at), iso8601(later)) << "every read path agrees";
}

// GPU leases: compare-and-set on the version, so two writers never both
// win; only live leases of a node are read back.
TYPED_TEST_P(StoreContract, GpuLeasesAreWrittenByCompareAndSet) {
  auto db = this->open();
  ASSERT_TRUE(db);
  gpu_lease_row l;
  l.id = "lease-cas";
  l.node = "host-a";
  l.holder = "svc";
  l.state = "active";
  l.gpus = R"(["GPU-0"])";
  l.exclusive = true;
  l.memory_bytes = 80LL << 30;
  l.ttl_ms = 60000;
  l.requested_at = caf::make_timestamp();
  l.granted_at = l.requested_at;
  auto put = db->put_gpu_lease(l);
  ASSERT_TRUE(put) << describe(put.error());
  EXPECT_TRUE(*put);
  EXPECT_FALSE(*db->put_gpu_lease(l)) << "a second insert of the same id loses";
  l.version = 1;
  l.holder = "first";
  auto a = db->put_gpu_lease(l);
  ASSERT_TRUE(a);
  EXPECT_TRUE(*a);
  l.holder = "second";  // a writer that read version 1 too
  EXPECT_FALSE(*db->put_gpu_lease(l)) << "a stale version is refused";
  auto live = db->live_gpu_leases("host-a");
  ASSERT_TRUE(live);
  ASSERT_EQ(live->size(), 1u);
  EXPECT_EQ((*live)[0].holder, "first");
  EXPECT_EQ((*live)[0].version, 2);
  EXPECT_EQ((*live)[0].gpus, R"(["GPU-0"])");
  EXPECT_TRUE((*live)[0].exclusive);
  EXPECT_TRUE(db->live_gpu_leases("host-b")->empty());
  auto done = (*live)[0];
  done.state = "released";
  EXPECT_TRUE(*db->put_gpu_lease(done));
  EXPECT_TRUE(db->live_gpu_leases("host-a")->empty()) << "released: history, not live";
}

TYPED_TEST_P(StoreContract, GpuEventsAreKeptPerNodeInOrder) {
  auto db = this->open();
  ASSERT_TRUE(db);
  auto at = caf::make_timestamp();
  for (int i = 0; i < 3; ++i) {
    gpu_event_row e;
    e.ts = at;
    e.node = i == 1 ? "host-b" : "host-a";
    e.kind = i == 0 ? "policy" : "overuse";
    e.lease_id = i == 0 ? "" : "lease-" + std::to_string(i);
    e.holder = "svc";
    e.message = "event " + std::to_string(i);
    auto id = db->add_gpu_event(e);
    ASSERT_TRUE(id) << describe(id.error());
    EXPECT_GT(*id, 0);
  }
  auto a = db->gpu_events("host-a", 0, 10);
  ASSERT_TRUE(a) << describe(a.error());
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].kind, "policy");
  EXPECT_EQ((*a)[0].message, "event 0");
  EXPECT_EQ((*a)[1].lease_id, "lease-2");
  EXPECT_LT((*a)[0].id, (*a)[1].id);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>((*a)[0].ts - at).count(), 0);
  auto after = db->gpu_events("host-a", (*a)[0].id, 10);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].message, "event 2");
  EXPECT_EQ(db->gpu_events("host-a", 0, 1)->size(), 1u) << "the limit holds";
  EXPECT_EQ(db->gpu_events("host-b", 0, 10)->size(), 1u);
}

REGISTER_TYPED_TEST_SUITE_P(StoreContract, MigrationsAreAppliedOnceAndAgainIsANoOp,
                            GpuLeasesAreWrittenByCompareAndSet, GpuEventsAreKeptPerNodeInOrder,
                            AnOwnersHeartbeatIsReadByItsUnfinishedRunsOnly,
                            ABatchIsCheckedRowAfterRowInItsOwnOrder,
                            ADueScheduleIsClaimedOnceAndItsTickLaunchedOnce,
                            TakeoversCursorsAndEventsAfterAnId,
                            AStaleEpochIsRefusedAfterATakeover,
                            RunsJobsAttemptsAndEventsRoundTrip,
                            IllegalTransitionsAreRefusedAndTheRestIsWritten,
                            ATransactionThatFailsHalfWayLeavesNothing,
                            ConcurrentWritersLoseNothing,
                            FiltersLimitsPrefixesAndUnfinishedRuns);

} // namespace troupe::testing
