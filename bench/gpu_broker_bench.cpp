// The GPU broker's cost (docs/benchmarks.md, issue 23):
//   1. lease / renew / release round trips through the actor, against a
//      no-op request to an echo actor measured in the same run;
//   2. the same through the coordinator's HTTP API (a real `troupe
//      coordinator` process), against GET /health in the same run;
//   3. the broker's CPU with 8 GPUs and 50 leases held at its 1 s
//      verification interval: process CPU over a window with the leases,
//      less the same window without.
// On the fake NVML library (no GPU here): its calls read a small state file,
// so the figures include that, not a driver's cost.
//
//   gpu_broker_bench --nvml build/tests/libfake_nvml.so --troupe build/troupe [--n 2000]
#include "actors/gpu_broker.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "runtime/api_client.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace troupe;
using clock_type = std::chrono::steady_clock;

namespace {

struct figures {
  double per_second = 0, p50_us = 0, p99_us = 0;
};

figures measure(int n, const std::function<void()>& op) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  auto t0 = clock_type::now();
  for (int i = 0; i < n; ++i) {
    auto a = clock_type::now();
    op();
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - a).count());
  }
  double total = std::chrono::duration<double>(clock_type::now() - t0).count();
  std::sort(us.begin(), us.end());
  return {n / total, us[us.size() / 2], us[us.size() * 99 / 100]};
}

void print(const char* what, const figures& f, const figures& base) {
  std::printf("%-34s %9.0f /s  p50 %8.1f us  p99 %8.1f us  (%.2fx the baseline's p50)\n", what,
              f.per_second, f.p50_us, f.p99_us, f.p50_us / base.p50_us);
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec
         + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

using echo_actor = caf::typed_actor<caf::replies_to<int32_t>::with<int32_t>>;

echo_actor::behavior_type echo() {
  return {[](int32_t x) { return x; }};
}

void actor_round_trips(caf::actor_system& sys, const gpu_broker_actor& broker, int n) {
  caf::scoped_actor self{sys};
  auto e = sys.spawn(echo);
  auto base = measure(n, [&] {
    self->request(e, std::chrono::seconds(2), int32_t{1}).receive([](int32_t) {}, [](caf::error&) {});
  });
  std::string id;
  gpu_ask ask;
  ask.holder = "bench";
  ask.memory_bytes = 1LL << 30;
  auto lease = measure(n / 2, [&] {
    self->request(broker, std::chrono::seconds(2), lease_atom_v, ask)
      .receive([&](gpu_grant& g) { id = g.lease_id; }, [](caf::error&) {});
    self->request(broker, std::chrono::seconds(2), release_atom_v, id)
      .receive([](gpu_use&) {}, [](caf::error&) {});
  });
  self->request(broker, std::chrono::seconds(2), lease_atom_v, ask)
    .receive([&](gpu_grant& g) { id = g.lease_id; }, [](caf::error&) {});
  auto renew = measure(n, [&] {
    self->request(broker, std::chrono::seconds(2), renew_atom_v, id)
      .receive([](gpu_grant&) {}, [](caf::error&) {});
  });
  self->request(broker, std::chrono::seconds(2), release_atom_v, id)
    .receive([](gpu_use&) {}, [](caf::error&) {});
  std::printf("-- through the actor (%d round trips each)\n", n);
  print("baseline: echo actor request", base, base);
  print("lease + release (a pair)", lease, base);
  print("renew", renew, base);
  self->send_exit(e, caf::exit_reason::user_shutdown);
}

void broker_cpu(caf::actor_system& sys, const gpu_broker_actor& broker) {
  caf::scoped_actor self{sys};
  // 50 processes to attach (sleeping children of this bench).
  std::vector<pid_t> kids;
  for (int i = 0; i < 50; ++i) {
    const char* argv[] = {"/bin/sleep", "60", nullptr};
    pid_t pid = 0;
    posix_spawn(&pid, "/bin/sleep", nullptr, nullptr, const_cast<char**>(argv), environ);
    kids.push_back(pid);
  }
  const double window = 10;
  auto idle0 = cpu_seconds();
  std::this_thread::sleep_for(std::chrono::duration<double>(window));
  auto idle = cpu_seconds() - idle0;
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    gpu_ask ask;
    ask.holder = "bench-" + std::to_string(i);
    ask.memory_bytes = 1LL << 30;
    ask.pid = kids[static_cast<size_t>(i)];
    self->request(broker, std::chrono::seconds(2), lease_atom_v, ask)
      .receive([&](gpu_grant& g) { ids.push_back(g.lease_id); }, [](caf::error&) {});
  }
  auto busy0 = cpu_seconds();
  std::this_thread::sleep_for(std::chrono::duration<double>(window));
  auto busy = cpu_seconds() - busy0;
  std::printf("-- broker CPU, 8 GPUs, %zu leases with attached processes, 1 s verification\n",
              ids.size());
  std::printf("process CPU over %.0f s: %.3f s with the leases, %.3f s without: the broker's "
              "share %.3f %% of a core\n",
              window, busy, idle, 100 * (busy - idle) / window);
  for (auto& id : ids)
    self->request(broker, std::chrono::seconds(2), release_atom_v, id)
      .receive([](gpu_use&) {}, [](caf::error&) {});
  for (auto pid : kids) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
}

void http_round_trips(const std::string& troupe, const std::string& nvml, int n) {
  char dir[] = "/tmp/troupe-gpu-bench-XXXXXX";
  if (::mkdtemp(dir) == nullptr)
    return;
  std::string d = dir;
  ::mkdir((d + "/p").c_str(), 0755);
  std::ofstream(d + "/p/none.yaml") << "name: none\nstages:\n  - name: a\n    shell: \"true\"\n";
  std::string out = d + "/co.out";
  ::setenv("TROUPE_GPU_SAFE_MODE", "0", 1);
  ::setenv("TROUPE_NVML_LIBRARY", nvml.c_str(), 1);
  // The fake GPUs' UUIDs are the same for everyone: a lock folder of its own.
  ::setenv("TROUPE_GPU_LOCK_DIR", (d + "/locks").c_str(), 1);
  std::string cmd = "'" + troupe + "' coordinator --pipelines '" + d + "/p' -o '" + d
                    + "/out' --listen 127.0.0.1:0 > '" + out + "' 2>/dev/null & echo $!";
  FILE* p = ::popen(cmd.c_str(), "r");
  int pid = 0;
  if (p == nullptr || std::fscanf(p, "%d", &pid) != 1)
    return;
  ::pclose(p);
  std::string url;
  for (int i = 0; i < 200 && url.empty(); ++i) {
    std::ifstream in(out);
    std::string line;
    while (std::getline(in, line))
      if (auto at = line.find("listening on "); at != std::string::npos)
        url = line.substr(at + 13);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (url.empty()) {
    std::printf("-- through HTTP: the coordinator did not start\n");
    return;
  }
  client_settings s;
  s.server = url;
  api_client api{s};
  auto base = measure(n, [&] { api.get("/health"); });
  std::string id;
  auto lease = measure(n / 2, [&] {
    auto r = api.post("/gpu/leases", R"({"holder": "bench", "memory": "1Gi"})");
    auto at = r.body.find("\"id\": \"");
    id = at == std::string::npos ? "" : r.body.substr(at + 7, r.body.find('"', at + 7) - at - 7);
    api.del("/gpu/leases/" + id);
  });
  auto r = api.post("/gpu/leases", R"({"holder": "bench", "memory": "1Gi"})");
  auto at = r.body.find("\"id\": \"");
  id = r.body.substr(at + 7, r.body.find('"', at + 7) - at - 7);
  auto renew = measure(n, [&] { api.post("/gpu/leases/" + id + "/renew", ""); });
  std::printf("-- through HTTP (%d round trips each, %s)\n", n, url.c_str());
  print("baseline: GET /health", base, base);
  print("POST lease + DELETE (a pair)", lease, base);
  print("POST renew", renew, base);
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  std::system(("rm -rf '" + d + "'").c_str());
}

} // namespace

int main(int argc, char** argv) {
  std::string nvml, troupe;
  int n = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--nvml")
      nvml = argv[i + 1];
    else if (k == "--troupe")
      troupe = argv[i + 1];
    else if (k == "--n")
      n = std::atoi(argv[i + 1]);
  }
  if (nvml.empty()) {
    std::fprintf(stderr, "usage: gpu_broker_bench --nvml LIB [--troupe BIN] [--n N]\n");
    return 2;
  }
  ::setenv("TROUPE_FAKE_NVML_GPUS", "8", 1);
  caf::actor_system_config cfg;
  register_types(cfg);
  configure_scheduler(cfg);
  caf::actor_system sys{cfg};
  gpu_broker_config bc;
  bc.policy.safe_mode = false;
  auto broker = spawn_gpu_broker(sys, open_nvml(nvml), bc);
  actor_round_trips(sys, broker, n);
  if (!troupe.empty())
    http_round_trips(troupe, nvml, n);
  broker_cpu(sys, broker);
  caf::anon_send_exit(broker, caf::exit_reason::user_shutdown);
  return 0;
}
