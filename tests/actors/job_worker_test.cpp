// job_worker on the real scheduler with real processes: its results for
// success, failure, cancel and leftovers, and that its tree is gone after.
#include "actors/job_worker.hpp"
#include "adapters/process/process_runner.hpp"
#include "adapters/process/process_table.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct JobWorkerTest : ::testing::Test {
  static caf::actor_system_config& prepare(caf::actor_system_config& cfg) {
    register_types(cfg);
    configure_scheduler(cfg);
    return cfg;
  }
  JobWorkerTest() : sys(prepare(cfg)), self(sys), runner(std::make_shared<process_runner>(false, false)) {
    char tmpl[] = "/tmp/troupe-worker-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~JobWorkerTest() override {
    std::system(("rm -rf " + dir).c_str());
  }
  job_spec spec(const std::string& shell, caf::timespan timeout = 10s) {
    job_spec s;
    s.run_id = "r";
    s.name = "stage";
    s.argv = {"/bin/sh", "-c", shell};
    s.cwd = dir;
    s.env = {"PATH=/usr/bin:/bin"};
    s.timeout = timeout;
    s.grace = 500ms;
    s.stdout_path = dir + "/out.log";
    s.stderr_path = dir + "/err.log";
    return s;
  }
  job_result run(job_spec s, std::function<void(job_worker_actor&)> meanwhile = {}) {
    auto w = spawn_job_worker(sys, runner, job_listener_actor{});
    auto h = self->request(w, caf::infinite, start_atom_v, std::move(s));
    if (meanwhile)
      meanwhile(w);
    job_result out;
    h.receive([&](job_result& r) { out = std::move(r); },
              [&](caf::error& e) { ADD_FAILURE() << sys.render(e); });
    return out;
  }

  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  std::shared_ptr<process_runner> runner;
  std::string dir;
};

} // namespace

TEST_F(JobWorkerTest, SuccessAndFailureAreResultsNotErrors) {
  auto ok = run(spec("echo hi"));
  EXPECT_EQ(ok.status, stage_status::succeeded);
  EXPECT_EQ(ok.exit_code, caf::optional<int32_t>{0});
  EXPECT_GT(ok.pid, 0);
  EXPECT_GT(ok.duration.count(), 0);
  auto bad = run(spec("exit 4"));
  EXPECT_EQ(bad.status, stage_status::failed);
  EXPECT_EQ(bad.failure, failure_code::exit_nonzero);
  EXPECT_EQ(bad.error, "exited with code 4");
  auto sig = run(spec("kill -SEGV $$"));
  EXPECT_EQ(sig.failure, failure_code::signaled);
  EXPECT_EQ(sig.signal, caf::optional<int32_t>{SIGSEGV});
}

TEST_F(JobWorkerTest, CancelStopsTheTree) {
  auto r = run(spec("sleep 30 & sleep 30; wait"), [](job_worker_actor& w) {
    std::this_thread::sleep_for(200ms);
    caf::anon_send(w, cancel_atom_v);
  });
  EXPECT_EQ(r.status, stage_status::cancelled);
  EXPECT_EQ(r.failure, failure_code::cancelled);
  EXPECT_EQ(r.signal, caf::optional<int32_t>{SIGTERM});
  EXPECT_TRUE(live_tree(r.pid).empty());
  EXPECT_LT(r.duration, 5s);
}

TEST_F(JobWorkerTest, TimeoutEscalatesToSigkillAfterGrace) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run(spec("trap '' TERM; sleep 30", 300ms));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, stage_status::timed_out);
  EXPECT_EQ(r.signal, caf::optional<int32_t>{SIGKILL});
  EXPECT_GE(took, 800ms);  // 300 ms timeout + 500 ms grace
  EXPECT_LT(took, 3s);
  EXPECT_NE(r.error.find("SIGKILL after 500ms grace"), std::string::npos) << r.error;
}

TEST_F(JobWorkerTest, LeftoversAreStoppedAndCounted) {
  auto r = run(spec("sleep 30 & sleep 30 & exit 0"));
  EXPECT_EQ(r.status, stage_status::succeeded);
  EXPECT_EQ(r.leftovers_killed, 2);
  EXPECT_TRUE(live_tree(r.pid).empty());
}

TEST_F(JobWorkerTest, SpawnFailureIsAResult) {
  auto s = spec("true");
  s.argv = {"/nonexistent/program"};
  auto r = run(s);
  EXPECT_EQ(r.status, stage_status::failed);
  EXPECT_EQ(r.failure, failure_code::spawn_failed);
  EXPECT_NE(r.error.find("cannot start '/nonexistent/program'"), std::string::npos) << r.error;
}

TEST_F(JobWorkerTest, CancelBeforeTheLeaderIsLaunchedStillStopsIt) {
  // The cancel is sent right behind the start: it usually arrives before the
  // runner's thread reports the launch, and must not be lost.
  auto r = run(spec("sleep 30"), [](job_worker_actor& w) { caf::anon_send(w, cancel_atom_v); });
  EXPECT_EQ(r.status, stage_status::cancelled);
  EXPECT_LT(r.duration, 5s);
  EXPECT_TRUE(live_tree(r.pid).empty());
}

TEST_F(JobWorkerTest, AJobWhoseRequesterDiesIsStopped) {
  // A crashed run_supervisor must not leave its stage running for nobody.
  auto w = spawn_job_worker(sys, runner, job_listener_actor{});
  auto requester = sys.spawn([w, s = spec("sleep 30 & echo $$ > pid; exec sleep 30")](
                               caf::event_based_actor* me) {
    me->request(w, caf::infinite, start_atom_v, s).then([](job_result&) {});
  });
  int32_t pid = 0;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (pid == 0 && std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(dir + "/pid");
    if (!(in >> pid))
      std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(pid, 0) << "the stage never started";
  EXPECT_FALSE(live_tree(pid).empty());
  self->monitor(w);
  caf::anon_send_exit(requester, caf::exit_reason::kill);
  bool worker_gone = false;
  self->receive([&](caf::down_msg&) { worker_gone = true; },
                caf::after(5s) >> [] {});
  EXPECT_TRUE(worker_gone) << "the job_worker kept running for a dead requester";
  EXPECT_TRUE(live_tree(pid).empty());
}

// A finished worker is gone soon after, whatever its stage's timeout: a
// pending one-hour timeout message used to keep every finished worker (and
// its memory) alive for the hour.
TEST_F(JobWorkerTest, AFinishedWorkerIsFreedDespiteALongTimeout) {
  caf::actor_addr addr;
  {
    auto w = spawn_job_worker(sys, runner, job_listener_actor{});
    addr = w.address();
    job_result out;
    self->request(w, caf::infinite, start_atom_v, spec("true", std::chrono::hours(1)))
      .receive([&](job_result& r) { out = std::move(r); },
               [&](caf::error& e) { ADD_FAILURE() << sys.render(e); });
    EXPECT_EQ(out.status, stage_status::succeeded);
  }
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (caf::actor_cast<caf::actor>(addr) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(caf::actor_cast<caf::actor>(addr)) << "the worker is still referenced";
  // Nor is its memory held: only this test's address of it remains (a
  // monitor it left on its requester used to hold it as long as the
  // requester lived, the node's whole life in a coordinator).
  auto* ctrl = caf::actor_cast<caf::actor_control_block*>(addr);
  EXPECT_EQ(ctrl->weak_refs.load(), 1u) << "something still points at the finished worker";
}
