// bench/hostile_clients: a coordinator among hostile clients (issue 21),
// against its own baseline measured in the same run.
//
//   build/bench/hostile_clients --troupe build/troupe [--header-timeout 10s]
//       [--idle 2000] [--slowloris 200] [--followers 500] [--launches 100]
//       [--seconds 12]
//
// Starts a real `troupe coordinator` on a free loopback port (a temporary
// folder for its pipelines, output and store), probes GET /health and GET
// /api/runs alone (the baseline), then again with the crowd open
// (tests/support/hostile_crowd.hpp): the idle sockets first (alone: what
// one costs in VmRSS), then the SSE followers and the slowloris, while 100
// runs are launched. Prints p50/p99/max of both, their ratios to the
// baseline, threads and memory from /proc.
#include "tests/support/hostile_crowd.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using namespace troupe::load;

struct figures {
  double p50, p99, max;
};

figures of(std::vector<double> v) {
  return {quantile(v, 0.5), quantile(v, 0.99), quantile(v, 1.0)};
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

} // namespace

int main(int argc, char** argv) {
  std::string troupe = "build/troupe", header_timeout = "10s";
  scenario_plan plan;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--troupe") troupe = v;
    else if (k == "--header-timeout") header_timeout = v;
    else if (k == "--idle") plan.idle = std::atoi(v.c_str());
    else if (k == "--slowloris") plan.slowloris = std::atoi(v.c_str());
    else if (k == "--followers") plan.followers = std::atoi(v.c_str());
    else if (k == "--launches") plan.launches = std::atoi(v.c_str());
    else if (k == "--seconds") plan.seconds = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "hostile_clients: unknown option %s (see the file's header)\n",
                   k.c_str());
      return 2;
    }
  }
  char tmpl[] = "/tmp/troupe-hostile-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::system(("mkdir -p " + dir + "/pipes").c_str());
  std::ofstream(dir + "/pipes/quick.yaml") << "name: quick\nstages:\n  - name: a\n    shell: \"true\"\n";
  std::ofstream(dir + "/pipes/followed.yaml")
    << "name: followed\nstages:\n"
       "  - name: one\n    shell: \"for i in 1 2 3 4; do echo $i; sleep 1; done\"\n"
       "  - name: two\n    shell: \"for i in 1 2 3 4; do echo $i; sleep 1; done\"\n"
       "  - name: three\n    shell: \"for i in 1 2 3 4 5 6; do echo $i; sleep 1; done\"\n";
  auto log = dir + "/coordinator.out";
  std::string cmd = "exec " + troupe + " coordinator --pipelines " + dir + "/pipes -o " + dir
                    + "/out --listen 127.0.0.1:0 > " + log + " 2> " + dir + "/coordinator.err";
  std::string env = "TROUPE_HEADER_TIMEOUT=" + header_timeout;
  ::setenv("TROUPE_HEADER_TIMEOUT", header_timeout.c_str(), 1);
  pid_t pid = 0;
  const char* sh[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(sh), environ) != 0) {
    std::fprintf(stderr, "hostile_clients: cannot start %s\n", troupe.c_str());
    return 1;
  }
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto out = read_all(log);
    auto at = out.find("listening on http://127.0.0.1:");
    if (at != std::string::npos && out.find('\n', at) != std::string::npos)
      port = std::atoi(out.c_str() + at + 30);
  }
  if (port == 0) {
    std::fprintf(stderr, "hostile_clients: the coordinator did not start:\n%s",
                 read_all(dir + "/coordinator.err").c_str());
    ::kill(pid, SIGTERM);
    return 1;
  }
  plan.port = port;
  plan.pid = pid;
  plan.quick = "quick";
  plan.followed = "followed";

  // Baseline: the same probes, no crowd.
  std::vector<double> base_h, base_l;
  auto t0 = std::chrono::steady_clock::now();
  for (bool turn = true; std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4);
       turn = !turn) {
    auto r = turn ? http_call(port, "GET", "/health") : http_call(port, "GET", "/api/runs?limit=20");
    if (r.status == 200)
      (turn ? base_h : base_l).push_back(r.ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(plan.probe_gap_ms));
  }
  auto res = run_scenario(plan);
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  if (!res.problem.empty()) {
    std::fprintf(stderr, "hostile_clients: %s\n", res.problem.c_str());
    return 1;
  }
  auto bh = of(base_h), bl = of(base_l), ch = of(res.health_ms), cl = of(res.runs_ms);
  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  std::printf("hostile_clients: %d idle + %d slowloris + %d followers, %d launches over %d s; "
              "header_timeout %s; %ld cores\n",
              plan.idle, plan.slowloris, plan.followers, plan.launches, plan.seconds,
              header_timeout.c_str(), cores);
  std::printf("  baseline  /health    p50 %6.2f  p99 %6.2f  max %6.2f ms  (%zu probes)\n", bh.p50,
              bh.p99, bh.max, base_h.size());
  std::printf("  baseline  /api/runs  p50 %6.2f  p99 %6.2f  max %6.2f ms  (%zu probes)\n", bl.p50,
              bl.p99, bl.max, base_l.size());
  std::printf("  crowd     /health    p50 %6.2f  p99 %6.2f  max %6.2f ms  (%zu probes)\n", ch.p50,
              ch.p99, ch.max, res.health_ms.size());
  std::printf("  crowd     /api/runs  p50 %6.2f  p99 %6.2f  max %6.2f ms  (%zu probes)\n", cl.p50,
              cl.p99, cl.max, res.runs_ms.size());
  std::printf("  p99 ratio crowd/baseline: /health %.2fx, /api/runs %.2fx; %d probes unanswered\n",
              bh.p99 > 0 ? ch.p99 / bh.p99 : 0.0, bl.p99 > 0 ? cl.p99 / bl.p99 : 0.0, res.missed);
  std::printf("  launches: %d answered 201, %d succeeded; followers: %d saw the end, %d closed "
              "after it; %d sockets at the peak, %d reopened after the server closed them\n",
              res.launched, res.succeeded, res.streams_with_end, res.followers_ended,
              res.crowd_open, res.reconnects);
  std::printf("  threads: %d before, at most %d; VmRSS %lld kB before, %lld kB with %d idle "
              "sockets (%.2f kB each), at most %lld kB\n",
              res.before.threads, res.max_threads, static_cast<long long>(res.before.rss_kb),
              static_cast<long long>(res.with_idle.rss_kb), plan.idle,
              plan.idle > 0 ? static_cast<double>(res.with_idle.rss_kb - res.before.rss_kb)
                                / plan.idle
                            : 0.0,
              static_cast<long long>(res.max_rss_kb));
  std::system(("rm -rf " + dir).c_str());
  return 0;
}
