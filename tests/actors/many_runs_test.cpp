// Many runs in one process, as the coordinator will hold them: 200 run
// supervisors share one node, one sampler, one io_pool and one store_writer
// on the real scheduler, each running a real sleeping stage. Every run
// succeeds, in the store too, and the process's thread count stays bounded
// (no thread per run: the artifact writers used to be one each).
#include "actors/artifact_writer.hpp"
#include "actors/node.hpp"
#include "actors/resource_sampler.hpp"
#include "actors/run_supervisor.hpp"
#include "actors/running_order.hpp"
#include "actors/store_writer.hpp"
#include "adapters/artifacts/io_pool.hpp"
#include "adapters/artifacts/run_folder.hpp"
#include "adapters/process/process_runner.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "adapters/sampling/topology.hpp"
#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "tests/support/real_system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

int thread_count() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("Threads:", 0) == 0)
      return std::stoi(line.substr(8));
  return -1;
}

run_plan sleeping_run(const std::string& id, const std::string& run_dir, const std::string& cwd) {
  run_plan p;
  auto& rec = p.record;
  rec.run_id = id;
  rec.pipeline = "many";
  rec.run_dir = run_dir;
  rec.started_at = caf::make_timestamp();
  rec.pid = static_cast<int32_t>(::getpid());
  rec.owner = "test:" + std::to_string(::getpid()) + ":0";
  stage_record sr;
  sr.name = "nap";
  sr.kind = "exec";
  sr.command = "sleep 2";
  sr.timeout = 60s;
  sr.stdout_log = "logs/nap.stdout.log";
  sr.stderr_log = "logs/nap.stderr.log";
  rec.stages.push_back(sr);
  job_spec js;
  js.run_id = id;
  js.name = "nap";
  js.argv = {"/bin/sleep", "2"};
  js.cwd = cwd;
  js.env = {"PATH=/usr/bin:/bin", "TROUPE_RUN_ID=" + id};
  js.timeout = sr.timeout;
  js.grace = 1s;
  js.stdout_path = run_dir + "/" + sr.stdout_log;
  js.stderr_path = run_dir + "/" + sr.stderr_log;
  p.jobs.push_back(std::move(js));
  p.retry.emplace_back();
  p.sample_interval = 500ms;
  return p;
}

struct ManyRunsTest : troupe::test::real_system_test {};

} // namespace

TEST_F(ManyRunsTest, TwoHundredRunsShareOneNodeAndStayWithinAFewThreads) {
  constexpr int runs = 200;
  auto db = open_store(dir + "/troupe.db");
  ASSERT_TRUE(db) << describe(db.error());
  auto store = spawn_store_writer(sys, std::move(*db));
  auto sampler = spawn_resource_sampler(sys, open_nvml("/nonexistent/libnvidia-ml.so.1"));
  node_services svc{std::make_shared<process_runner>(true, false), nullptr, ""};
  svc.sampler = sampler;
  auto node = spawn_node(sys, svc);
  int before = thread_count();
  std::vector<run_supervisor_actor> sups;
  std::vector<artifact_writer_actor> writers;
  for (int i = 0; i < runs; ++i) {
    auto id = "many-" + std::to_string(::getpid()) + "-" + std::to_string(i);
    auto run_dir = dir + "/" + id;
    ASSERT_EQ(make_directories(run_dir + "/logs"), caf::none);
    run_supervisor_deps deps;
    deps.node = node;
    deps.writer = spawn_artifact_writer(sys, pool, run_dir);
    deps.store = store;
    deps.listener = caf::actor_cast<progress_listener_actor>(self);
    writers.push_back(deps.writer);
    sups.push_back(spawn_run_supervisor(sys, sleeping_run(id, run_dir, dir), std::move(deps)));
  }
  for (auto& s : sups)
    self->send(s, start_atom_v);
  int most_threads = 0;
  std::map<std::string, int> exit_codes;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (static_cast<int>(exit_codes.size()) < runs && std::chrono::steady_clock::now() < deadline) {
    self->receive(
      [&](progress_event& ev) {
        if (ev.kind == progress_event::kind_t::run_finished)
          exit_codes[ev.run_id] = ev.exit_code;
      },
      caf::after(std::chrono::milliseconds(100)) >> [] {});
    most_threads = std::max(most_threads, thread_count());
  }
  ASSERT_EQ(static_cast<int>(exit_codes.size()), runs) << "runs that never finished";
  for (auto& [id, code] : exit_codes)
    EXPECT_EQ(code, 0) << id;
  // Bounded: the scheduler, the process runner, the pool, the sampler and
  // the store writer, whatever the number of runs.
  EXPECT_LE(most_threads, before + 8) << "threads grew with the runs (" << before << " before)";
  std::printf("threads: %d before the runs, at most %d with %d runs\n", before, most_threads, runs);
  // Every run succeeded in the store too, and said so in its own folder.
  auto reader = open_store(dir + "/troupe.db");
  ASSERT_TRUE(reader);
  run_filter all;
  all.limit = 1000;
  auto rows = (*reader)->runs(all);
  ASSERT_TRUE(rows);
  int succeeded = 0;
  for (auto& r : *rows)
    succeeded += r.status == run_status::succeeded ? 1 : 0;
  EXPECT_EQ(succeeded, runs);
  for (auto& w : writers)
    self->send_exit(w, caf::exit_reason::user_shutdown);
  for (auto a : {caf::actor_cast<caf::actor>(store), caf::actor_cast<caf::actor>(node),
                 caf::actor_cast<caf::actor>(sampler)})
    self->send_exit(a, caf::exit_reason::user_shutdown);
}

// A cancel that reaches a supervisor before its start (a SIGTERM in troupe's
// first milliseconds, a cancel racing a launch) ends the run cancelled; the
// start that follows must not revive it as a run that is still running.
TEST_F(ManyRunsTest, ACancelBeforeTheStartIsACancelledRunAndStartsNothing) {
  auto sampler = keep(spawn_resource_sampler(sys, open_nvml("/nonexistent/libnvidia-ml.so.1")));
  node_services svc{std::make_shared<process_runner>(true, false), nullptr, ""};
  svc.sampler = sampler;
  auto node = keep(spawn_node(sys, svc));
  auto id = "early-cancel-" + std::to_string(::getpid());
  auto run_dir = dir + "/" + id;
  ASSERT_EQ(make_directories(run_dir + "/logs"), caf::none);
  run_supervisor_deps deps;
  deps.node = node;
  deps.writer = keep(spawn_artifact_writer(sys, pool, run_dir));
  deps.listener = caf::actor_cast<progress_listener_actor>(self);
  auto sup = spawn_run_supervisor(sys, sleeping_run(id, run_dir, dir), std::move(deps));
  self->send(sup, cancel_atom_v);
  self->send(sup, start_atom_v);
  std::optional<progress_event> finished;
  bool stage_started = false;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!finished && std::chrono::steady_clock::now() < deadline)
    self->receive(
      [&](progress_event& ev) {
        if (ev.kind == progress_event::kind_t::run_finished)
          finished = ev;
        stage_started |= ev.kind == progress_event::kind_t::stage_started;
      },
      caf::after(std::chrono::milliseconds(100)) >> [] {});
  ASSERT_TRUE(finished) << "the run never finished";
  EXPECT_EQ(finished->run, run_status::cancelled);
  EXPECT_EQ(finished->exit_code, exit_code::cancelled);
  EXPECT_FALSE(stage_started);
  ASSERT_EQ(finished->stages.size(), 1u);
  EXPECT_EQ(finished->stages[0].status, stage_status::skipped);
}
