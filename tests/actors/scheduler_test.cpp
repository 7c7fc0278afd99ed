// The scheduler on the real scheduler threads with real processes: 50 runs
// launched at once under a limit of 4 never have more than 4 attempts
// running (from the times the store recorded), all succeed; a run launched
// when a slot is free starts its first stage at once (no polling).
#include "actors/node.hpp"
#include "actors/resource_sampler.hpp"
#include "actors/scheduler.hpp"
#include "actors/store_writer.hpp"
#include "adapters/artifacts/io_pool.hpp"
#include "adapters/artifacts/run_folder.hpp"
#include "adapters/process/process_runner.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "adapters/sampling/topology.hpp"
#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "runtime/ids.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/run_plan.hpp"
#include "tests/support/real_system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <map>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct SchedulerTest : troupe::test::real_system_test {

  scheduler_actor start(int32_t max_running) {
    auto db = open_store(dir + "/troupe.db");
    EXPECT_TRUE(db) << describe(db.error());
    scheduler_deps deps;
    deps.store = spawn_store_writer(sys, std::move(*db));
    auto sampler = spawn_resource_sampler(sys, open_nvml("/nonexistent/libnvidia-ml.so.1"));
    node_services svc{std::make_shared<process_runner>(true, false), nullptr, ""};
    svc.sampler = sampler;
    deps.node = spawn_node(sys, svc);
    deps.pool = pool;
    deps.listener = caf::actor_cast<progress_listener_actor>(self);
    deps.max_running = max_running;
    keep(deps.store);
    keep(deps.node);
    keep(sampler);
    return keep(spawn_scheduler(sys, std::move(deps)));
  }

  launch_plan plan_of(const std::string& shell) {
    auto p = parse_pipeline("name: sched\nstages:\n  - name: work\n    shell: \"" + shell + "\"\n",
                            dir + "/p.yaml");
    EXPECT_TRUE(p);
    auto now = caf::make_timestamp();
    auto run_dir = create_run_folder(dir + "/out", now);
    EXPECT_TRUE(run_dir);
    run_start s;
    s.run_id = make_run_id(now);
    s.run_dir = *run_dir;
    s.started_at = now;
    s.pid = static_cast<int32_t>(::getpid());
    s.owner = "test";
    s.grace = 1s;
    s.environment = {{"PATH", "/usr/bin:/bin"}};
    return launch_plan{std::make_shared<run_plan>(make_run_plan(*p, s)), 0};
  }

  // Waits for `n` run_finished events; their exit codes by run id.
  std::map<std::string, int32_t> finished(size_t n, std::chrono::seconds limit) {
    std::map<std::string, int32_t> out;
    auto end = std::chrono::steady_clock::now() + limit;
    while (out.size() < n && std::chrono::steady_clock::now() < end)
      self->receive(
        [&](progress_event& ev) {
          if (ev.kind == progress_event::kind_t::run_finished)
            out[ev.run_id] = ev.exit_code;
        },
        caf::after(std::chrono::milliseconds(100)) >> [] {});
    return out;
  }

};

} // namespace

TEST_F(SchedulerTest, FiftyLaunchesUnderALimitOfFourNeverRunMoreThanFour) {
  auto sched = start(4);
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i)
    self->request(sched, caf::infinite, launch_atom_v, plan_of("sleep 0.2"))
      .receive([&](std::string& id) { ids.push_back(id); },
               [&](caf::error& e) { FAIL() << sys.render(e); });
  auto done = finished(50, 120s);
  ASSERT_EQ(done.size(), 50u);
  for (auto& [id, code] : done)
    EXPECT_EQ(code, 0) << id;
  // From the store's own times: how many attempts overlapped at most.
  auto db = open_store(dir + "/troupe.db");
  ASSERT_TRUE(db);
  std::vector<std::pair<caf::timestamp, int>> edges;
  int succeeded = 0;
  for (auto& id : ids) {
    auto runs = (*db)->runs_by_prefix(id, 1);
    ASSERT_TRUE(runs && runs->size() == 1);
    succeeded += runs->front().status == run_status::succeeded ? 1 : 0;
    auto attempts = (*db)->attempts(id);
    ASSERT_TRUE(attempts && attempts->size() == 1) << id;
    auto& a = attempts->front();
    ASSERT_TRUE(a.started_at && a.finished_at);
    edges.emplace_back(*a.started_at, +1);
    edges.emplace_back(*a.finished_at, -1);
  }
  EXPECT_EQ(succeeded, 50);
  std::sort(edges.begin(), edges.end(), [](auto& x, auto& y) {
    return x.first != y.first ? x.first < y.first : x.second < y.second;  // ends first
  });
  int now = 0, most = 0;
  for (auto& [t, d] : edges)
    most = std::max(most, now += d);
  EXPECT_LE(most, 4) << "more than 4 runs at once";
  EXPECT_GE(most, 2) << "the limit, not a single file, kept them apart";
}

TEST_F(SchedulerTest, ALaunchedRunStartsAtOnce) {
  auto sched = start(4);
  auto t0 = caf::make_timestamp();
  std::string id;
  self->request(sched, caf::infinite, launch_atom_v, plan_of("true"))
    .receive([&](std::string& x) { id = x; }, [&](caf::error& e) { FAIL() << sys.render(e); });
  ASSERT_EQ(finished(1, 30s).size(), 1u);
  auto db = open_store(dir + "/troupe.db");
  ASSERT_TRUE(db);
  auto attempts = (*db)->attempts(id);
  ASSERT_TRUE(attempts && attempts->size() == 1);
  auto latency = *attempts->front().started_at - t0;
  EXPECT_LT(latency, 500ms) << "launch to first-stage start, no polling interval";
  std::printf("launch to first-stage start: %.1f ms\n",
              std::chrono::duration<double, std::milli>(latency).count());
}
