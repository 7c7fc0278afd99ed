// The local node on the real scheduler with real processes: attempts of
// several runs at once, named by (run, stage, attempt); cancel by key; a
// requester that dies has its attempts stopped; a key runs once at a time.
#include "actors/node.hpp"
#include "actors/job_worker.hpp"
#include "adapters/process/process_runner.hpp"
#include "tests/support/real_system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <csignal>
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

// A job_worker killed mid-attempt answers nothing; the node, which
// monitors it, ends the attempt as worker_lost and kills its processes.
TEST_F(NodeTest, AJobWorkerKilledMidAttemptEndsItAsWorkerLost) {
  auto runner = std::make_shared<process_runner>(false, false);
  auto made = std::make_shared<std::vector<job_worker_actor>>();
  node_services svc;
  svc.runner = runner;
  svc.exec_worker = [runner, made](caf::actor_system& s, job_listener_actor listener) {
    made->push_back(spawn_job_worker(s, runner, listener));
    return made->back();
  };
  auto n = keep(spawn_node(sys, svc));
  auto s = spec("run-lost", "echo started $$ > " + dir + "/pid; exec sleep 30");
  auto pending = self->request(n, caf::infinite, start_atom_v, s);
  auto t0 = std::chrono::steady_clock::now();
  while (!file_has(dir + "/pid", "started") && std::chrono::steady_clock::now() - t0 < 5s)
    std::this_thread::sleep_for(10ms);
  std::ifstream in(dir + "/pid");
  std::string word;
  int pid = 0;
  in >> word >> pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(made->size(), 1u);
  self->send_exit(made->front(), caf::exit_reason::kill);
  job_result r;
  bool answered = false;
  pending.receive(
    [&](job_result& x) {
      r = x;
      answered = true;
    },
    [&](caf::error& e) { FAIL() << sys.render(e); });
  ASSERT_TRUE(answered);
  EXPECT_EQ(r.status, stage_status::failed);
  EXPECT_EQ(r.failure, failure_code::worker_lost) << r.error;
  EXPECT_NE(r.error.find("job_worker died without a result"), std::string::npos) << r.error;
  // Its process is gone (killed by the node), and the key is free again.
  for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_NE(::kill(pid, 0), 0) << "pid " << pid << " outlived its lost worker";
}

// Capacity is the node's, across requesters: with 2 slots, 4 one-slot
// attempts of 4 runs never run more than 2 at once; those held back are
// told why; one that can never fit is refused at once; a waiting one can
// be cancelled before it starts.
TEST_F(NodeTest, TheNodesSlotsHoldAcrossRunsAndTheWaitingAreTold) {
  node_services svc;
  svc.runner = std::make_shared<process_runner>(false, false);
  svc.slots = 2;
  auto n = keep(spawn_node(sys, svc));
  std::vector<job_result> results;
  // Plain sends: the answers and the waiting notes come to self's mailbox.
  for (auto run : {"r1", "r2", "r3", "r4"})
    self->send(n, start_atom_v, spec(run, "sleep 0.4"));
  // The answers come to self's mailbox; gather them with the waiting notes.
  std::vector<std::string> waits;
  int got = 0;
  self->receive_for(got, 4 + 2)(
    [&](job_result& r) { results.push_back(r); },
    [&](waiting_atom, const std::string& stage, const std::string& why) {
      waits.push_back(stage + ": " + why);
    },
    caf::after(10s) >> [&] { FAIL() << "not all answers came"; });
  ASSERT_EQ(results.size(), 4u);
  ASSERT_EQ(waits.size(), 2u);
  EXPECT_NE(waits[0].find("waiting for the node: 2 of 2 CPU slots in use, it needs 1"),
            std::string::npos)
    << waits[0];
  std::vector<std::pair<caf::timestamp, int>> edges;
  for (auto& r : results) {
    EXPECT_EQ(r.status, stage_status::succeeded) << r.error;
    edges.emplace_back(r.started_at, 1);
    edges.emplace_back(r.finished_at, -1);
  }
  std::sort(edges.begin(), edges.end());
  int now = 0, most = 0;
  for (auto& [t, d] : edges)
    most = std::max(most, now += d);
  EXPECT_EQ(most, 2);
  auto big = spec("r5", "true");
  big.resources.cpus = 3;
  self->request(n, caf::infinite, start_atom_v, big)
    .receive(
      [&](job_result& r) {
        EXPECT_EQ(r.failure, failure_code::spawn_failed);
        EXPECT_NE(r.error.find("the node cannot run it: 0 of 2 CPU slots in use, it needs 3"),
                  std::string::npos)
          << r.error;
      },
      [&](caf::error& e) { FAIL() << sys.render(e); });
}

TEST_F(NodeTest, AnAttemptCancelledWhileWaitingForRoomNeverStarts) {
  node_services svc;
  svc.runner = std::make_shared<process_runner>(false, false);
  svc.slots = 1;
  auto n = keep(spawn_node(sys, svc));
  auto busy = self->request(n, caf::infinite, start_atom_v, spec("busy", "sleep 1"));
  self->send(n, start_atom_v, spec("held", "echo ran > " + dir + "/held.ran"));
  self->receive([&](waiting_atom, const std::string&, const std::string&) {},
                caf::after(5s) >> [&] { FAIL() << "no waiting note"; });
  self->send(n, cancel_atom_v, job_key{"held", "stage", 1});
  self->receive(
    [&](job_result& r) {
      EXPECT_EQ(r.status, stage_status::cancelled);
      EXPECT_EQ(r.error, "cancelled while waiting for the node");
    },
    caf::after(5s) >> [&] { FAIL() << "no answer for the cancelled attempt"; });
  busy.receive([&](job_result& r) { EXPECT_EQ(r.status, stage_status::succeeded); },
               [&](caf::error& e) { FAIL() << sys.render(e); });
  EXPECT_FALSE(std::ifstream(dir + "/held.ran").good()) << "the cancelled attempt ran";
}
