// The local node on the real scheduler with real processes: attempts of
// several runs at once, named by (run, stage, attempt); cancel by key; a
// requester that dies has its attempts stopped; a key runs once at a time.
#include "actors/node.hpp"
#include "adapters/process/process_runner.hpp"
#include "tests/support/real_system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct NodeTest : troupe::test::real_system_test {
  NodeTest() {
    node = keep(spawn_node(sys, node_services{std::make_shared<process_runner>(false, false),
                                              nullptr, ""}));
  }
  job_spec spec(const std::string& run, const std::string& shell) {
    job_spec s;
    s.run_id = run;
    s.name = "stage";
    s.attempt = 1;
    s.argv = {"/bin/sh", "-c", shell};
    s.cwd = dir;
    s.env = {"PATH=/usr/bin:/bin"};
    s.timeout = 30s;
    s.grace = 500ms;
    s.stdout_path = dir + "/" + run + ".out";
    s.stderr_path = dir + "/" + run + ".err";
    return s;
  }
  bool file_has(const std::string& path, const std::string& text) {
    std::ifstream in(path);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.find(text) != std::string::npos;
  }

  node_actor node;
};

} // namespace

TEST_F(NodeTest, TwoRunsShareANodeAndACancelStopsOnlyItsKey) {
  auto a = self->request(node, caf::infinite, start_atom_v,
                         spec("run-a", "echo started; sleep 30"));
  auto b = self->request(node, caf::infinite, start_atom_v,
                         spec("run-b", "echo started; sleep 1; echo done"));
  // Same run and stage, another attempt number: a different job.
  auto t0 = std::chrono::steady_clock::now();
  while (!file_has(dir + "/run-a.out", "started") && std::chrono::steady_clock::now() - t0 < 5s)
    std::this_thread::sleep_for(10ms);
  self->send(node, cancel_atom_v, job_key{"run-a", "stage", 1});
  job_result ra, rb;
  a.receive([&](job_result& r) { ra = r; }, [&](caf::error& e) { FAIL() << sys.render(e); });
  b.receive([&](job_result& r) { rb = r; }, [&](caf::error& e) { FAIL() << sys.render(e); });
  EXPECT_EQ(ra.status, stage_status::cancelled);
  EXPECT_EQ(rb.status, stage_status::succeeded) << rb.error;
  EXPECT_TRUE(file_has(dir + "/run-b.out", "done"));
}

TEST_F(NodeTest, AKeyRunsOnceAtATime) {
  auto first = self->request(node, caf::infinite, start_atom_v, spec("run-c", "sleep 1"));
  std::this_thread::sleep_for(100ms);
  bool refused = false;
  self->request(node, caf::infinite, start_atom_v, spec("run-c", "true"))
    .receive([&](job_result&) {}, [&](caf::error&) { refused = true; });
  EXPECT_TRUE(refused) << "a second start of run-c/stage#1 while it runs";
  first.receive([&](job_result& r) { EXPECT_EQ(r.status, stage_status::succeeded); },
                [&](caf::error& e) { FAIL() << sys.render(e); });
}

TEST_F(NodeTest, ARequesterThatDiesHasItsAttemptsStopped) {
  auto s = spec("run-d", "echo started; sleep 30");
  auto out = s.stdout_path;
  {
    caf::scoped_actor requester{sys};
    requester->send(node, start_atom_v, std::move(s));
    auto t0 = std::chrono::steady_clock::now();
    while (!file_has(out, "started") && std::chrono::steady_clock::now() - t0 < 5s)
      std::this_thread::sleep_for(10ms);
  }  // the requester is gone
  // The attempt is stopped: its key is free again soon after.
  bool free_again = false;
  for (int i = 0; i < 100 && !free_again; ++i) {
    std::this_thread::sleep_for(50ms);
    self->request(node, caf::infinite, start_atom_v, spec("run-d", "true"))
      .receive([&](job_result&) { free_again = true; }, [&](caf::error&) {});
  }
  EXPECT_TRUE(free_again) << "the dead requester's attempt kept running";
}
