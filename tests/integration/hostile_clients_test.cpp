// Issue 21: a coordinator among hostile clients and on full disks. Real
// coordinator processes on loopback; HTTP outcomes checked against what the
// store and the run folder hold.
#include "tests/support/coordinator_process.hpp"
#include "tests/support/hostile_crowd.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

using namespace troupe::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct HostileClients : ::testing::Test {
  temp_dir tmp;
  std::string pipes() const { return tmp.path() + "/pipes"; }
  std::string out() const { return tmp.path() + "/out"; }
  void SetUp() override { ::mkdir(pipes().c_str(), 0755); }
  void pipe(const std::string& name, const std::string& rest) {
    std::ofstream(pipes() + "/" + name + ".yaml") << "name: " << name << "\n" << rest;
  }
  std::vector<std::string> args(const std::string& output = {}) {
    return {"--pipelines", pipes(), "-o", output.empty() ? out() : output};
  }
  static json wait_ended(httplib::Client& c, const std::string& id) {
    return wait_run_ended(c, id);
  }
  static std::string message(const httplib::Result& r) {
    auto j = body_json(r);
    return j.is_object() && j.contains("error") ? j["error"].value("message", "") : "";
  }
};

} // namespace

TEST_F(HostileClients, TroupesSecretsNeverReachAStage) {
  const std::string token = "tok-3f9a1c2e7b5d4a60";
  pipe("dump", "stages:\n  - name: dump\n    shell: \"env; echo copy=$COPY\"\n");
  coordinator_process co(args(), tmp.path(),
                         {"TROUPE_TOKEN=" + token, "COPY=" + token, "PGPASSWORD=pg-secret-99"});
  auto c = co.client(token);
  EXPECT_EQ(co.client()->Get("/api/runs")->status, 401) << "the token is in force";
  auto made = c->Post("/api/runs", R"({"pipeline": "dump"})", "application/json");
  ASSERT_EQ(made->status, 201) << made->body;
  auto id = body_json(made)["id"].get<std::string>();
  auto run = wait_ended(*c, id);
  EXPECT_EQ(run["status"], "succeeded") << run.dump();
  auto log = c->Get(("/api/runs/" + id + "/logs/dump").c_str());
  ASSERT_EQ(log->status, 200);
  EXPECT_NE(log->body.find("PATH="), std::string::npos) << "the stage's environment was dumped";
  EXPECT_EQ(log->body.find(token), std::string::npos) << log->body;
  EXPECT_EQ(log->body.find("TROUPE_TOKEN"), std::string::npos) << log->body;
  EXPECT_EQ(log->body.find("pg-secret-99"), std::string::npos) << log->body;
  EXPECT_NE(log->body.find("copy=\n"), std::string::npos) << "a copy of the token is dropped too";
  EXPECT_NE(log->body.find("TROUPE_RUN_ID="), std::string::npos) << "troupe's own run variables stay";
  // The file on disk says the same as the API.
  auto on_disk = read_file(run["run_dir"].get<std::string>() + "/logs/dump.stdout.log");
  EXPECT_EQ(on_disk.find(token), std::string::npos);
  EXPECT_EQ(c->Get(("/api/runs/" + id).c_str())->body.find(token), std::string::npos);
}

TEST_F(HostileClients, BodiesUpToTheLimitAreReadAsJsonWhateverTheirContentType) {
  pipe("quick", "api_env: [PAD]\nstages:\n  - name: a\n    shell: \"true\"\n");
  coordinator_process co(args(), tmp.path());
  auto c = co.client();
  // `curl -d` sends application/x-www-form-urlencoded: read as JSON all the same.
  auto ok = c->Post("/api/runs", R"({"pipeline": "quick"})", "application/x-www-form-urlencoded");
  ASSERT_EQ(ok->status, 201) << ok->body;
  for (auto type : {"application/json", "application/x-www-form-urlencoded", "text/plain"}) {
    for (size_t size : {size_t{8} << 10, size_t{100} << 10, (size_t{1} << 20) - 64}) {
      SCOPED_TRACE(std::string(type) + " " + std::to_string(size));
      std::string head = R"({"pipeline": "quick", "env": {"PAD": ")";
      std::string body = head + std::string(size - head.size() - 3, 'x') + "\"}}";
      ASSERT_EQ(body.size(), size);
      auto r = c->Post("/api/runs", body, type);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 201) << r->body.substr(0, 300);
    }
    std::string over(size_t{1} << 20, ' ');
    over = R"({"pipeline": "quick"})" + over.substr(21) + " ";
    ASSERT_EQ(over.size(), (size_t{1} << 20) + 1);
    auto r = c->Post("/api/runs", over, type);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413) << type;
    EXPECT_EQ(message(r), "the body is over the limit of 1048576 bytes") << r->body;
  }
  // A configured limit is the one enforced and stated.
  coordinator_process small(args(), tmp.path(), {"TROUPE_MAX_BODY=64KiB"});
  std::string body = R"({"pipeline": "quick", "env": {"PAD": ")" + std::string(70000, 'x') + "\"}}";
  auto r = small.client()->Post("/api/runs", body, "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(message(r), "the body is over the limit of 65536 bytes") << r->body;
}

// A small tmpfs (root only) as the output folder: the coordinator refuses
// launches while it is full, says so without its paths, and recovers.
TEST_F(HostileClients, AFullOutputFolderFailsTheRunRefusesLaunchesAndRecovers) {
  auto mnt = tmp.path() + "/small";
  ::mkdir(mnt.c_str(), 0755);
  if (std::system(("mount -t tmpfs -o size=4m tmpfs '" + mnt + "' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): the full-disk test did not run";
  struct unmount {
    std::string at;
    ~unmount() { std::system(("umount -l '" + at + "'").c_str()); }
  } guard{mnt};
  pipe("cut", "stages:\n  - name: cut\n    shell: \"head -c 9000000 /dev/zero || true\"\n");
  pipe("quick", "stages:\n  - name: a\n    shell: \"echo hi\"\n");
  auto a = args(mnt + "/out");
  a.insert(a.end(), {"--db", tmp.path() + "/troupe.db"});  // the store elsewhere
  coordinator_process co(a, tmp.path(), {"TROUPE_MIN_FREE_SPACE=1MiB"});
  auto c = co.client();

  // A stage that fills the folder: its log is cut, so it failed, whatever its exit code.
  auto made = c->Post("/api/runs", R"({"pipeline": "cut"})", "application/json");
  ASSERT_EQ(made->status, 201) << made->body;
  auto id = body_json(made)["id"].get<std::string>();
  auto run = wait_ended(*c, id);
  EXPECT_EQ(run["status"], "failed") << run.dump();
  EXPECT_EQ(run["failure_code"], "artifact_write_failed") << run.dump();
  ASSERT_EQ(run["jobs"].size(), 1u) << run.dump();
  auto error = run["jobs"][0]["error"].get<std::string>();
  EXPECT_EQ(error.rfind("logs/cut.stdout.log: No space left on device", 0), 0u) << error;
  EXPECT_NE(error.find("(the process exited with code 0)"), std::string::npos) << error;
  EXPECT_EQ(error.find(mnt), std::string::npos) << error;
  EXPECT_EQ(run["reason"].get<std::string>().find(mnt), std::string::npos) << run.dump();
  auto meta = read_json(run["run_dir"].get<std::string>() + "/metadata.json");
  EXPECT_EQ(meta["failure_code"], "artifact_write_failed");

  // Full: a clear 503, no path, nothing created.
  auto refused = c->Post("/api/runs", R"({"pipeline": "quick"})", "application/json");
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_EQ(body_json(refused)["error"]["code"], "output_full") << refused->body;
  EXPECT_NE(message(refused).find("min_free_space"), std::string::npos) << refused->body;
  EXPECT_EQ(refused->body.find(mnt), std::string::npos) << refused->body;
  auto listed = body_json(c->Get("/api/runs"))["runs"];
  EXPECT_EQ(listed.size(), 1u) << "the refused launch left no run";

  // Space returns: launches work again.
  std::system(("rm -f '" + run["run_dir"].get<std::string>() + "/logs/cut.stdout.log'").c_str());
  auto again = c->Post("/api/runs", R"({"pipeline": "quick"})", "application/json");
  ASSERT_EQ(again->status, 201) << again->body;
  auto ok = wait_ended(*c, body_json(again)["id"].get<std::string>());
  EXPECT_EQ(ok["status"], "succeeded") << ok.dump();
}

// 2,000 idle connections, 200 slowloris and 500 SSE followers at once, while
// a client launches 100 runs and polls /health and /api/runs. The figures
// (bench/hostile_clients reports them against a baseline) are printed; the
// bounds here are loose enough for a loaded CI machine and still fail a
// server that stalls (a stalled probe takes seconds, or gets no answer).
TEST_F(HostileClients, IdleSlowlorisAndStreamingCrowdsStallNothing) {
  pipe("quick", "stages:\n  - name: a\n    shell: \"true\"\n");
  pipe("followed", "stages:\n"
                   "  - name: one\n    shell: \"for i in 1 2 3 4; do echo $i; sleep 1; done\"\n"
                   "  - name: two\n    shell: \"for i in 1 2 3 4; do echo $i; sleep 1; done\"\n"
                   "  - name: three\n    shell: \"for i in 1 2 3 4 5 6; do echo $i; sleep 1; done\"\n");
  coordinator_process co(args(), tmp.path());
  troupe::load::scenario_plan plan;
  plan.port = co.port();
  plan.pid = co.pid();
  plan.quick = "quick";
  plan.followed = "followed";
  auto r = troupe::load::run_scenario(plan);
  ASSERT_TRUE(r.problem.empty()) << r.problem;
  auto h = r.health_ms, l = r.runs_ms;
  double h50 = troupe::load::quantile(h, 0.5), h99 = troupe::load::quantile(h, 0.99);
  double l50 = troupe::load::quantile(l, 0.5), l99 = troupe::load::quantile(l, 0.99);
  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::printf("hostile crowd: %d sockets open at the peak, %d reconnects\n"
              "  /health    p50 %.2f ms, p99 %.2f ms (%zu probes)\n"
              "  /api/runs  p50 %.2f ms, p99 %.2f ms (%zu probes), %d probes unanswered\n"
              "  launches %d/%d answered 201, %d succeeded; %d/%d followers saw the end\n"
              "  threads %d idle, at most %d (%ld cores); VmRSS %lld kB idle, %lld kB with %d idle "
              "sockets, at most %lld kB\n",
              r.crowd_open, r.reconnects, h50, h99, r.health_ms.size(), l50, l99,
              r.runs_ms.size(), r.missed, r.launched, plan.launches, r.succeeded,
              r.followers_ended, plan.followers, r.before.threads, r.max_threads, cores,
              static_cast<long long>(r.before.rss_kb), static_cast<long long>(r.with_idle.rss_kb),
              plan.idle, static_cast<long long>(r.max_rss_kb));
  EXPECT_GE(r.crowd_open, plan.idle + plan.slowloris + plan.followers - 50)
    << "the crowd was not all there";
  EXPECT_GT(r.health_ms.size(), 50u);
  EXPECT_EQ(r.missed, 0) << "a probe got no answer";
  EXPECT_LE(h99, 250.0);
  EXPECT_LE(l99, 250.0);
  EXPECT_EQ(r.launched, plan.launches);
  EXPECT_EQ(r.succeeded, plan.launches);
  EXPECT_EQ(r.streams_with_end, plan.followers) << "every follower saw its run end";
  EXPECT_EQ(r.followers_ended, plan.followers);
  EXPECT_LE(r.max_threads, 2 * cores + 12) << "threads grew with the crowd";
}

// Over a cap, a client gets a 503 at once (never a stall) and everyone else
// is served; a POST without a body or a Content-Length is answered at once;
// a burst of 300 concurrent POSTs is answered in full.
TEST_F(HostileClients, OverTheCapsAClientGetsAFast503AndOthersAreServed) {
  using namespace troupe::load;
  raise_open_files();
  pipe("quick", "stages:\n  - name: a\n    shell: \"true\"\n");
  coordinator_process co(args(), tmp.path(),
                         {"TROUPE_MAX_CONNECTIONS_PER_CLIENT=10", "TROUPE_MAX_CONNECTIONS=40"});
  const uint32_t greedy = 0x7f000005, other = 0x7f000006;  // 127.0.0.5, 127.0.0.6
  std::vector<int> held;
  for (int i = 0; i < 10; ++i)
    held.push_back(idle_socket(co.port(), greedy));
  std::this_thread::sleep_for(200ms);
  auto refused = http_call(co.port(), "GET", "/health", "", 5000, "", greedy);
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_LT(refused.ms, 1500) << "refused at once, not after a wait";
  EXPECT_NE(refused.body.find("too_many_connections"), std::string::npos) << refused.body;
  EXPECT_NE(refused.body.find("the limit for one client"), std::string::npos) << refused.body;
  EXPECT_EQ(http_call(co.port(), "GET", "/health", "", 5000, "", other).status, 200);
  // The whole server's cap: 40 open, then a fresh client is refused too.
  for (uint32_t a = 0x7f000010; held.size() < 40; ++a)
    for (int i = 0; i < 8 && held.size() < 40; ++i)
      held.push_back(idle_socket(co.port(), a));
  std::this_thread::sleep_for(200ms);
  auto full = http_call(co.port(), "GET", "/health", "", 5000, "", 0x7f000099);
  EXPECT_EQ(full.status, 503) << full.body;
  EXPECT_NE(full.body.find("the server holds 40 connections"), std::string::npos) << full.body;
  for (int fd : held)
    ::close(fd);
  std::this_thread::sleep_for(300ms);
  auto metrics = http_call(co.port(), "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  auto at = metrics.body.find("\ntroupe_http_refused_total ");
  ASSERT_NE(at, std::string::npos) << metrics.body;
  EXPECT_GE(std::atoi(metrics.body.c_str() + at + 27), 2) << metrics.body.substr(at, 40);

  // Neither a body nor a Content-Length: the request has no body, answered now.
  auto bare = raw_call(co.port(), "POST /api/runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                       5000);
  EXPECT_EQ(bare.status, 400) << bare.body;
  EXPECT_LT(bare.ms, 1000);

  // A burst (default caps): 300 POSTs at once, from 30 addresses; every one
  // answered 201.
  coordinator_process roomy(args(tmp.path() + "/out2"), tmp.path());
  std::atomic<int> created{0}, answered{0};
  std::vector<std::thread> burst;
  for (int i = 0; i < 300; ++i)
    burst.emplace_back([&, i] {
      auto r = http_call(roomy.port(), "POST", "/api/runs", R"({"pipeline": "quick"})", 30000, "",
                         0x7f000100u + static_cast<uint32_t>(i % 30));
      answered += r.status != 0 ? 1 : 0;
      created += r.status == 201 ? 1 : 0;
    });
  for (auto& t : burst)
    t.join();
  EXPECT_EQ(answered.load(), 300) << "no connection was reset";
  EXPECT_EQ(created.load(), 300);
}
