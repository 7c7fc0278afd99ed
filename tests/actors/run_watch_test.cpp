// The parent's half of supervision, on the real scheduler: a run_supervisor
// killed mid-stage is seen by await_run, and record_lost_run fails the run
// as `lost` in a real SQLite store and in metadata.json; the stage it was
// running is stopped, because its job_worker watches its requester.
#include "actors/artifact_writer.hpp"
#include "actors/node.hpp"
#include "actors/resource_sampler.hpp"
#include "actors/run_supervisor.hpp"
#include "actors/store_writer.hpp"
#include "adapters/artifacts/io_pool.hpp"
#include "adapters/artifacts/run_folder.hpp"
#include "adapters/process/process_runner.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "adapters/sampling/topology.hpp"
#include "adapters/store/store.hpp"
#include "runtime/run_watch.hpp"
#include "tests/support/real_system.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// Unique per test process: recovery kills every process carrying a run's id
// (TROUPE_RUN_ID), which must not reach a test running beside this one.
std::string watch_run_id() {
  return "run-watch-" + std::to_string(::getpid());
}

bool alive(int32_t pid) {
  return pid > 0 && ::kill(pid, 0) == 0;
}

struct RunWatchTest : troupe::test::real_system_test {

  // What a run_supervisor needs, as `troupe run` builds it (no GPUs).
  run_supervisor_deps deps_for(const std::string& run_dir, store_actor store = {}) {
    run_supervisor_deps deps;
    auto sampler = spawn_resource_sampler(sys, open_nvml("/nonexistent/libnvidia-ml.so.1"));
    node_services svc{std::make_shared<process_runner>(false, false), nullptr, ""};
    svc.sampler = sampler;
    deps.node = spawn_node(sys, svc);
    helpers.push_back(caf::actor_cast<caf::actor>(deps.node));
    deps.writer = spawn_artifact_writer(sys, pool, run_dir);
    deps.store = store;
    deps.listener = caf::actor_cast<progress_listener_actor>(self);
    helpers.push_back(caf::actor_cast<caf::actor>(sampler));
    helpers.push_back(caf::actor_cast<caf::actor>(deps.writer));
    if (store)
      helpers.push_back(caf::actor_cast<caf::actor>(store));
    return deps;
  }

  // One stage that would run for a minute, and one after it.
  run_plan plan(const std::string& run_dir) {
    run_plan p;
    auto& rec = p.record;
    rec.run_id = watch_run_id();
    rec.pipeline = "watch";
    rec.run_dir = run_dir;
    rec.started_at = caf::make_timestamp();
    rec.pid = static_cast<int32_t>(::getpid());
    rec.host = read_host_info();
    for (std::string name : {"long", "after"}) {
      stage_record sr;
      sr.name = name;
      sr.kind = "exec";
      sr.command = "sleep 60";
      sr.timeout = 120s;
      sr.stdout_log = "logs/" + name + ".stdout.log";
      sr.stderr_log = "logs/" + name + ".stderr.log";
      rec.stages.push_back(sr);
      job_spec js;
      js.run_id = rec.run_id;
      js.name = name;
      js.argv = {"/bin/sleep", "60"};
      js.cwd = dir;
      js.env = {"PATH=/usr/bin:/bin", "TROUPE_RUN_ID=" + rec.run_id};
      js.timeout = sr.timeout;
      js.grace = 500ms;
      js.stdout_path = run_dir + "/" + sr.stdout_log;
      js.stderr_path = run_dir + "/" + sr.stderr_log;
      p.jobs.push_back(std::move(js));
      p.retry.emplace_back();
    }
    return p;
  }

};

} // namespace

TEST_F(RunWatchTest, AKilledSupervisorsRunIsRecordedAsLostAndItsStageStopped) {
  auto run_dir = create_run_folder(dir, caf::make_timestamp());
  ASSERT_TRUE(run_dir);
  const auto url = dir + "/troupe.db";
  auto db = open_store(url);
  ASSERT_TRUE(db) << sys.render(db.error());
  auto store = spawn_store_writer(sys, std::move(*db));
  auto deps = deps_for(*run_dir, store);
  auto writer = deps.writer;
  auto sup = spawn_run_supervisor(sys, plan(*run_dir), std::move(deps));
  self->send(sup, start_atom_v);

  int32_t stage_pid = 0;
  bool stage_alive_at_kill = false;
  bool killed = false;
  auto reader = open_store(url);  // a second connection, as another process would have
  ASSERT_TRUE(reader);
  auto outcome = await_run(
    self, sup,
    [&](progress_event& ev) {
      if (ev.kind != progress_event::kind_t::stage_started || killed)
        return;
      // Kill the supervisor once the store knows the stage's pid.
      auto deadline = std::chrono::steady_clock::now() + 10s;
      while (stage_pid == 0 && std::chrono::steady_clock::now() < deadline) {
        auto attempts = (*reader)->attempts(watch_run_id());
        if (attempts && !attempts->empty() && attempts->front().pid > 0)
          stage_pid = attempts->front().pid;
        else
          std::this_thread::sleep_for(10ms);
      }
      stage_alive_at_kill = alive(stage_pid);
      killed = true;
      self->send_exit(sup, caf::exit_reason::kill);  // as a crash would
    },
    [] {});
  ASSERT_GT(stage_pid, 0) << "the store never had the stage's pid";
  EXPECT_TRUE(stage_alive_at_kill);
  ASSERT_TRUE(killed) << "the stage never started";
  EXPECT_FALSE(outcome.finished);
  EXPECT_EQ(outcome.died, caf::exit_reason::kill);

  auto report = record_lost_run(self, {watch_run_id(), *run_dir, url, writer, store},
                                "run_supervisor died: killed");
  ASSERT_TRUE(report) << sys.render(report.error());
  EXPECT_EQ(report->runs_failed, 1);
  EXPECT_EQ(report->attempts_interrupted, 1);

  // The stage is stopped: by its job_worker (which watched its requester)
  // or by the settling, whichever came first; within the worker's grace.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (alive(stage_pid) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(alive(stage_pid)) << "stage " << stage_pid << " outlived its run";

  auto check = open_store(url);
  ASSERT_TRUE(check);
  auto runs = (*check)->runs_by_prefix(watch_run_id(), 2);
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ(runs->front().status, run_status::failed);
  EXPECT_EQ(runs->front().failure, failure_code::lost);
  EXPECT_EQ(runs->front().reason, "run_supervisor died: killed");
  auto jobs = (*check)->jobs(watch_run_id());
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].status, stage_status::failed);
  EXPECT_EQ((*jobs)[0].failure, failure_code::lost);
  EXPECT_EQ((*jobs)[1].status, stage_status::skipped);
  auto attempts = (*check)->attempts(watch_run_id());
  ASSERT_TRUE(attempts);
  ASSERT_EQ(attempts->size(), 1u);
  EXPECT_EQ(attempts->front().status, stage_status::failed);
  EXPECT_EQ(attempts->front().failure, failure_code::lost);
  EXPECT_EQ(attempts->front().pid, stage_pid);
  auto events = (*check)->events(watch_run_id(), event_level::error);
  ASSERT_TRUE(events);
  ASSERT_FALSE(events->empty());
  EXPECT_EQ(events->back().message, "run failed: lost: run_supervisor died: killed");

  std::ifstream in(*run_dir + "/metadata.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto meta = nlohmann::json::parse(ss.str());
  EXPECT_EQ(meta["status"], "failed");
  EXPECT_EQ(meta["failure_code"], "lost");
  EXPECT_EQ(meta["reason"], "run_supervisor died: killed");
  EXPECT_TRUE(meta["finished_at"].is_string());

  // A second settling finds nothing left to do and writes nothing.
  auto before = (*check)->events(watch_run_id(), event_level::info);
  ASSERT_TRUE(before);
  auto again = record_lost_run(self, {watch_run_id(), *run_dir, url, writer, store}, "again");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->runs_failed, 0);
  auto after = (*check)->events(watch_run_id(), event_level::info);
  ASSERT_TRUE(after);
  EXPECT_EQ(before->size(), after->size());
}

TEST_F(RunWatchTest, AFinishedRunIsReportedAsFinished) {
  auto run_dir = create_run_folder(dir, caf::make_timestamp());
  ASSERT_TRUE(run_dir);
  auto p = plan(*run_dir);
  for (auto& j : p.jobs)
    j.argv = {"/bin/true"};
  auto sup = spawn_run_supervisor(sys, std::move(p), deps_for(*run_dir));
  self->send(sup, start_atom_v);
  int finished_stages = 0;
  auto outcome = await_run(
    self, sup,
    [&](progress_event& ev) {
      finished_stages += ev.kind == progress_event::kind_t::stage_finished ? 1 : 0;
    },
    [] {});
  EXPECT_TRUE(outcome.finished);
  EXPECT_EQ(outcome.exit_code, 0);
  EXPECT_FALSE(outcome.died);
  EXPECT_EQ(finished_stages, 2);
}
