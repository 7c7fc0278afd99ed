// GPU stages through `troupe run`'s own node and broker, on the fake NVML
// library (the one stand-in allowed: CI has no GPU) loaded through the
// real dlopen path: leases and CUDA_VISIBLE_DEVICES, fallbacks, safe mode,
// a missing library, a SIGKILLed job's lease, over-use, and a released
// lease held until NVML shows its processes gone.
#include "include/troupe/gpu_client.hpp"
#include "tests/support/coordinator_process.hpp"
#include "tests/support/troupe_process.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <thread>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

struct GpuStages : ::testing::Test {
  temp_dir tmp;
  std::string out() const {
    return tmp.path() + "/out";
  }
  std::string state() const {
    return tmp.path() + "/nvml.state";
  }
  std::vector<std::string> env(bool safe_mode_off = true, int gpus = 2) {
    std::vector<std::string> e{"TROUPE_NVML_LIBRARY=" + std::string(TROUPE_FAKE_NVML),
                               "TROUPE_FAKE_NVML_GPUS=" + std::to_string(gpus),
                               "TROUPE_FAKE_NVML_STATE=" + state()};
    if (safe_mode_off)
      e.push_back("TROUPE_GPU_SAFE_MODE=0");
    return e;
  }
  troupe_result run(const std::string& yaml, std::vector<std::string> extra) {
    std::ofstream(tmp.path() + "/p.yaml") << yaml;
    std::ofstream(state(), std::ios::app);
    return run_troupe({"run", tmp.path() + "/p.yaml", "-o", out()}, tmp.path(), extra);
  }
  json metadata() {
    return read_json(single_run_dir(out()) + "/metadata.json");
  }
  static const json& stage(const json& m, const std::string& name) {
    for (auto& s : m["stages"])
      if (s["name"] == name)
        return s;
    throw std::runtime_error("no stage " + name);
  }
  std::string log(const std::string& name) {
    return read_file(single_run_dir(out()) + "/logs/" + name + ".stdout.log");
  }
  std::string events() {
    return run_troupe({"events", single_run_dir(out()), "-o", out()}, tmp.path()).out;
  }
  // The port `troupe gpu serve` printed once it listened; 0 if it never did.
  static int listening_port(troupe_process& serve) {
    int port = 0;
    serve.wait_until(
      [&] {
        auto o = read_file(serve.out_path());
        auto at = o.find("listening on http://127.0.0.1:");
        if (at == std::string::npos || o.find('\n', at) == std::string::npos)
          return false;
        port = std::stoi(o.substr(at + 30));
        return true;
      },
      10s);
    return port;
  }
};

} // namespace

TEST_F(GpuStages, ParallelStagesGetDifferentGpusAndAThirdFallsBackOrFailsPerPolicy) {
  auto r = run(R"(name: gpus
max_parallel: 4
on_failure: continue
stages:
  - name: one
    depends_on: []
    shell: "echo $CUDA_VISIBLE_DEVICES $NVIDIA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER; sleep 1"
    resources: { gpus: 1 }
  - name: two
    depends_on: []
    shell: "echo $CUDA_VISIBLE_DEVICES; sleep 1"
    resources: { gpus: 1 }
  - name: cpu
    depends_on: []
    shell: "echo [$CUDA_VISIBLE_DEVICES] $TROUPE_GPU_FALLBACK"
    resources: { gpus: 1 }
    gpu_fallback: cpu
  - name: fails
    depends_on: []
    shell: "echo ran"
    resources: { gpus: 1 }
)",
               env());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto m = metadata();
  auto one = log("one"), two = log("two");
  std::smatch a, b;
  ASSERT_TRUE(std::regex_search(one, a, std::regex("(GPU-fake-[01]) (GPU-fake-[01]) PCI_BUS_ID")))
    << one;
  EXPECT_EQ(a[1], a[2]) << "CUDA and NVIDIA see the same UUIDs";
  ASSERT_TRUE(std::regex_search(two, b, std::regex("GPU-fake-[01]"))) << two;
  EXPECT_NE(a[1].str(), b[0].str()) << "two stages at once, two GPUs";
  auto& lease = stage(m, "one")["attempts"][0]["lease"];
  EXPECT_EQ(lease["gpus"][0], a[1].str());
  EXPECT_GT(lease["gpu_seconds"].get<double>(), 0.9);
  EXPECT_EQ(log("cpu"), "[] 1\n") << "the fallback runs with no GPU visible";
  auto& fell = stage(m, "cpu")["attempts"][0]["lease"];
  EXPECT_EQ(fell["fallback"], true);
  EXPECT_NE(fell["reason"].get<std::string>().find("0 carry no lease now"), std::string::npos);
  EXPECT_EQ(stage(m, "fails")["failure_code"], "gpu_unavailable");
  EXPECT_NE(stage(m, "fails")["error"].get<std::string>().find("no GPU for it: "),
            std::string::npos);
  EXPECT_NE(events().find("gpu_fallback: cpu: runs without a GPU"), std::string::npos);
  // The store has the lease too, in the attempt's stats.
  auto shown = json::parse(run_troupe({"show", single_run_dir(out()), "--json", "-o", out()},
                                      tmp.path()).out);
  bool stored = false;
  for (auto& st : shown["stages"])
    if (st["name"] == "one")
      for (auto& at : st["attempts"])
        stored = at.contains("stats") && at["stats"].contains("lease")
                 && at["stats"]["lease"]["gpus"][0] == a[1].str();
  EXPECT_TRUE(stored) << shown.dump();
}

TEST_F(GpuStages, AStageThatWaitsGetsTheGpuWhenTheOtherReleasesIt) {
  auto r = run(R"(name: wait
max_parallel: 2
stages:
  - name: first
    depends_on: []
    shell: "sleep 1"
    resources: { gpus: 1 }
  - name: second
    depends_on: []
    shell: "echo $CUDA_VISIBLE_DEVICES"
    resources: { gpus: 1 }
    gpu_fallback: wait
)",
               env(true, 1));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = metadata();
  EXPECT_EQ(log("second"), "GPU-fake-0\n");
  EXPECT_NE(events().find("waiting for a GPU: "), std::string::npos) << events();
  EXPECT_GE(stage(m, "second")["attempts"][0]["started_at"].get<std::string>(),
            stage(m, "first")["attempts"][0]["finished_at"].get<std::string>())
    << "it started once the first had ended";
}

TEST_F(GpuStages, SafeModeIsTheDefaultAndAMissingLibraryMeansNoGpu) {
  const std::string yaml = R"(name: safe
stages:
  - name: gpu
    shell: "echo [$CUDA_VISIBLE_DEVICES] $TROUPE_GPU_FALLBACK"
    resources: { gpu_memory: 1Gi }
    gpu_fallback: cpu
  - name: plain
    shell: "echo plain"
)";
  auto r = run(yaml, env(false));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lease = stage(metadata(), "gpu")["attempts"][0]["lease"];
  EXPECT_NE(lease["reason"].get<std::string>().find("safe mode is on"), std::string::npos)
    << lease.dump();
  EXPECT_EQ(log("gpu"), "[] 1\n");
  std::system(("rm -rf '" + out() + "'").c_str());
  auto missing = run(yaml, {"TROUPE_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1",
                            "TROUPE_GPU_SAFE_MODE=0"});
  ASSERT_EQ(missing.exit_code, 0) << missing.err;
  auto why = stage(metadata(), "gpu")["attempts"][0]["lease"]["reason"].get<std::string>();
  EXPECT_NE(why.find("this node has no GPUs"), std::string::npos) << why;
  EXPECT_NE(why.find("not loaded"), std::string::npos) << why;
  EXPECT_EQ(log("plain"), "plain\n");
  auto bad = run(yaml, {"TROUPE_GPU_SAFE_MODE=maybe"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("$TROUPE_GPU_SAFE_MODE: 'maybe' is not 0 or 1"), std::string::npos)
    << bad.err;
}

TEST_F(GpuStages, AJobKilledWithSigkillFreesItsLease) {
  auto r = run(R"(name: killed
on_failure: continue
max_parallel: 1
stages:
  - name: dies
    shell: "kill -9 $$"
    resources: { gpus: 1 }
  - name: next
    depends_on: []
    shell: "echo $CUDA_VISIBLE_DEVICES"
    resources: { gpus: 1 }
)",
               env(true, 1));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto m = metadata();
  EXPECT_EQ(stage(m, "dies")["failure_code"], "signaled");
  EXPECT_EQ(stage(m, "next")["status"], "succeeded") << stage(m, "next").dump();
  EXPECT_EQ(log("next"), "GPU-fake-0\n");
}

TEST_F(GpuStages, OverUseIsAnEventAndWithKillTheStageFailsGpuOom) {
  // (Stages do not inherit troupe's TROUPE_* variables: the path is written out.)
  const std::string yaml = "name: greedy\nstages:\n  - name: greedy\n    shell: \"echo proc 0 $$ "
                           "5368709120 >> " + state() + "; sleep 8\"\n"
                           "    resources: { gpu_memory: 1Gi }\n";
  auto e = env();
  e.push_back("TROUPE_GPU_MEMORY_ENFORCE=kill");
  auto t0 = std::chrono::steady_clock::now();
  auto r = run(yaml, e);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 6s) << "stopped, not left to sleep";
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto s = stage(metadata(), "greedy");
  EXPECT_EQ(s["failure_code"], "gpu_oom") << s.dump();
  EXPECT_NE(s["error"].get<std::string>().find("its processes use 5120 MiB of GPU memory, over "
                                               "the 1024 MiB leased"),
            std::string::npos)
    << s["error"];
  EXPECT_EQ(s["attempts"][0]["lease"]["over_use"], true);
  EXPECT_GE(s["attempts"][0]["lease"]["peak_gpu_memory_bytes"].get<int64_t>(), 5LL << 30);
  EXPECT_NE(events().find("gpu_memory_enforce: kill"), std::string::npos);
}

TEST_F(GpuStages, AReleasedShareStaysBookedUntilNvmlShowsItsProcessesGone) {
  // The first stage's process is still on the GPU (the state file says so)
  // after it ended; the second waits until the test clears it.
  // (It runs long enough for a verification, 1 s apart, to see its shell.)
  auto yaml = "name: held\nstages:\n  - name: big\n    shell: \"echo proc 0 $$ 1 >> " + state()
              + "; sleep 2.5\"\n    resources: { gpu_memory: 60Gi }\n  - name: after\n"
                "    shell: \"echo $CUDA_VISIBLE_DEVICES\"\n"
                "    resources: { gpu_memory: 40Gi }\n    gpu_fallback: wait\n";
  std::ofstream(tmp.path() + "/p.yaml") << yaml;
  std::ofstream(state()).close();
  troupe_process t{{"run", tmp.path() + "/p.yaml", "-o", out()}, tmp.path(), env(true, 1)};
  auto big_ended = [&] {
    auto m = read_file(single_run_dir(out()) + "/metadata.json");
    return m.find("\"status\": \"succeeded\"") != std::string::npos;
  };
  ASSERT_TRUE(t.wait_until(big_ended, 15s));
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(read_file(single_run_dir(out()) + "/logs/after.stdout.log").empty())
    << "started while the first lease's process was still on the GPU";
  std::ofstream(state()).close();  // NVML no longer shows it: the booking is freed
  auto r = t.wait(20s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(log("after"), "GPU-fake-0\n");
  EXPECT_NE(events().find("waiting for a GPU: no GPU has 40960 MiB unbooked"), std::string::npos)
    << events();
}

// The broker through the coordinator's API: inventory, policy (safe mode
// first), leases granted, renewed, released, expired; metrics promtool
// accepts; the token guards /gpu/ as it guards /api/.
TEST_F(GpuStages, TheBrokerAnswersThroughTheCoordinatorsApi) {
  ::mkdir((tmp.path() + "/pipes").c_str(), 0755);
  std::ofstream(tmp.path() + "/pipes/none.yaml") << "name: none\nstages:\n  - name: a\n"
                                                    "    shell: \"true\"\n";
  std::ofstream(state(), std::ios::app);
  auto e = env(false);
  coordinator_process co({"--pipelines", tmp.path() + "/pipes", "-o", out(), "--token", "tok"},
                         tmp.path(), e);
  auto c = co.client("tok");
  EXPECT_EQ(co.client()->Get("/gpu/info")->status, 401) << "the token guards /gpu/";
  auto info = body_json(c->Get("/gpu/info"));
  EXPECT_EQ(info["available"], true) << info.dump();
  ASSERT_EQ(info["gpus"].size(), 2u);
  EXPECT_EQ(info["gpus"][1]["uuid"], "GPU-fake-1");
  EXPECT_EQ(info["driver_version"], "999.99-fake");
  EXPECT_EQ(info["safe_mode"], true);
  auto post = [&](const std::string& path, const json& body) {
    return c->Post(path.c_str(), body.dump(), "application/json");
  };
  auto denied = post("/gpu/leases", {{"holder", "svc"}, {"gpus", 1}});
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 409);
  EXPECT_NE(denied->body.find("safe mode is on"), std::string::npos) << denied->body;
  EXPECT_EQ(post("/gpu/policy", {{"reserve", "1Gi"}})->status, 409)
    << "only safe_mode may change while it is on";
  EXPECT_EQ(post("/gpu/policy", {{"bogus", 1}})->status, 400);
  auto off = post("/gpu/policy", {{"safe_mode", false}, {"default_ttl", "1h"}});
  ASSERT_EQ(off->status, 200) << off->body;
  EXPECT_EQ(body_json(c->Get("/gpu/policy"))["safe_mode"], false);
  // Each change is an event naming who made it and what changed.
  auto ev = body_json(c->Get("/gpu/events"))["events"];
  ASSERT_EQ(ev.size(), 1u) << ev.dump();
  EXPECT_EQ(ev[0]["kind"], "policy");
  EXPECT_EQ(ev[0]["message"], "policy changed by the API (from 127.0.0.1): safe_mode on -> off")
    << "default_ttl was 1h already";
  auto first_id = ev[0]["id"].get<int64_t>();
  EXPECT_TRUE(body_json(c->Get(("/gpu/events?after=" + std::to_string(first_id)).c_str()))
                ["events"].empty());
  auto bad_after = c->Get("/gpu/events?after=soon");
  EXPECT_EQ(bad_after->status, 400);
  EXPECT_NE(bad_after->body.find("after"), std::string::npos) << bad_after->body;
  auto bad = post("/gpu/policy", {{"default_ttl", "soon"}});
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("default_ttl"), std::string::npos) << bad->body;
  EXPECT_EQ(post("/gpu/leases", {{"holder", "svc"}})->status, 400) << "gpus or memory";
  auto whole = post("/gpu/leases", {{"holder", "svc"}, {"gpus", 1}});
  ASSERT_EQ(whole->status, 201) << whole->body;
  auto lease = body_json(whole);
  auto id = lease["id"].get<std::string>();
  EXPECT_EQ(lease["gpus"][0], "GPU-fake-0");
  EXPECT_EQ(lease["state"], "granted");
  auto renewed = c->Post(("/gpu/leases/" + id + "/renew").c_str(), "", "application/json");
  EXPECT_EQ(renewed->status, 200) << renewed->body;
  auto listed = body_json(c->Get("/gpu/leases"))["leases"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["state"], "active");
  EXPECT_EQ(c->Delete(("/gpu/leases/" + id).c_str())->status, 200);
  EXPECT_EQ(c->Delete(("/gpu/leases/" + id).c_str())->status, 404);
  EXPECT_EQ(c->Post("/gpu/leases/nope/renew", "", "application/json")->status, 404);
  // A short lease expires, its holder unrenewed; the book frees it.
  auto brief = post("/gpu/leases", {{"holder", "brief"}, {"memory", "8Gi"}, {"ttl", "1s"}});
  ASSERT_EQ(brief->status, 201) << brief->body;
  ASSERT_TRUE(co.process().wait_until(
    [&] { return body_json(c->Get("/gpu/leases"))["leases"].empty(); }, 10s));
  auto m = c->Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("troupe_gpu_lease_granted_total 2"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("troupe_gpu_lease_denied_total 1"), std::string::npos);
  EXPECT_NE(m->body.find("troupe_gpu_lease_expired_total 1"), std::string::npos);
  EXPECT_NE(m->body.find("troupe_gpu_memory_total_bytes{uuid=\"GPU-fake-0\",index=\"0\"} "
                         "85899345920"),
            std::string::npos);
  auto file = tmp.write("metrics.txt", m->body);
  auto rc = std::system(("promtool check metrics < '" + file + "' > '" + file + ".out' 2>&1").c_str());
  EXPECT_EQ(rc, 0) << read_file(file + ".out");
  // The same through the CLI.
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "gpu");
    args.insert(args.end(), {"--server", co.url(), "--token", "tok"});
    return run_troupe(args, tmp.path());
  };
  auto shown = cli({"info"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("GPU-fake-1"), std::string::npos) << shown.out;
  auto got = cli({"lease", "--holder", "cli", "--memory", "2Gi"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  auto lid = got.out.substr(0, got.out.find('\n'));
  EXPECT_NE(cli({"leases"}).out.find(lid + " "), std::string::npos);
  EXPECT_EQ(cli({"release", lid}).exit_code, 0);
  EXPECT_EQ(cli({"lease", "--holder", "cli"}).exit_code, 2) << "--gpus or --memory";
  EXPECT_EQ(cli({"policy", "--safe-mode", "on"}).exit_code, 0);
  auto shown_events = cli({"events"});
  EXPECT_EQ(shown_events.exit_code, 0) << shown_events.err;
  EXPECT_NE(shown_events.out.find("expired"), std::string::npos) << shown_events.out;
  EXPECT_NE(shown_events.out.find("safe_mode off -> on"), std::string::npos) << shown_events.out;
  auto later = cli({"events", "--after", "999999"});
  EXPECT_EQ(later.out, "(no events)\n");
  auto refused = cli({"lease", "--holder", "cli", "--gpus", "1"});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("safe mode is on"), std::string::npos) << refused.err;
}

// Leases are rows of the coordinator's store: one granted before a restart
// is there after it, with its GPU still booked, and a release is history.
TEST_F(GpuStages, ALeaseOutlivesACoordinatorRestart) {
  ::mkdir((tmp.path() + "/pipes").c_str(), 0755);
  std::ofstream(tmp.path() + "/pipes/none.yaml") << "name: none\nstages:\n  - name: a\n"
                                                    "    shell: \"true\"\n";
  std::ofstream(state(), std::ios::app);
  std::vector<std::string> args{"--pipelines", tmp.path() + "/pipes", "-o", out()};
  std::string id;
  {
    coordinator_process co(args, tmp.path(), env());
    auto r = co.client()->Post("/gpu/leases", R"({"holder": "svc", "gpus": 1, "ttl": "10m"})",
                               "application/json");
    ASSERT_EQ(r->status, 201) << r->body;
    id = body_json(r)["id"].get<std::string>();
    auto p = co.client()->Post("/gpu/policy", R"({"reserve": "1Gi"})", "application/json");
    ASSERT_EQ(p->status, 200) << p->body;
    ::kill(co.pid(), SIGTERM);
    co.process().wait(10s);
  }
  coordinator_process again(args, tmp.path(), env());
  auto c = again.client();
  auto listed = body_json(c->Get("/gpu/leases"))["leases"];
  ASSERT_EQ(listed.size(), 1u) << listed.dump();
  EXPECT_EQ(listed[0]["id"], id);
  // The broker's events are the store's too: the policy change is there.
  auto ev = body_json(c->Get("/gpu/events"))["events"];
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev[0]["kind"], "policy") << ev.dump();
  EXPECT_NE(ev[0]["message"].get<std::string>().find("reserve 0 MiB -> 1024 MiB"),
            std::string::npos)
    << ev.dump();
  EXPECT_EQ(listed[0]["state"], "active");
  auto two = c->Post("/gpu/leases", R"({"holder": "other", "gpus": 2})", "application/json");
  EXPECT_EQ(two->status, 409) << "one of the two GPUs is still leased: " << two->body;
  EXPECT_EQ(c->Delete(("/gpu/leases/" + id).c_str())->status, 200);
  EXPECT_TRUE(body_json(c->Get("/gpu/leases"))["leases"].empty());
  EXPECT_EQ(c->Post("/gpu/leases", R"({"holder": "other", "gpus": 2})", "application/json")->status,
            201);
  // The store's own count: the released lease is a row in state released.
  if (std::system("command -v sqlite3 > /dev/null") == 0) {
    auto q = "sqlite3 '" + out() + "/troupe.db' \"SELECT state FROM gpu_leases WHERE id = '" + id
             + "'\" > '" + tmp.path() + "/q.txt'";
    ASSERT_EQ(std::system(q.c_str()), 0);
    EXPECT_EQ(read_file(tmp.path() + "/q.txt"), "released\n");
  }
}

// The header-only client fails closed within its timeout: a broker that is
// up answers; one that is gone or silent is "no GPU", never a hang; the
// policy is cached.
TEST_F(GpuStages, TheHeaderOnlyClientFailsClosedWithinItsTimeout) {
  ::mkdir((tmp.path() + "/pipes").c_str(), 0755);
  std::ofstream(tmp.path() + "/pipes/none.yaml") << "name: none\nstages:\n  - name: a\n"
                                                    "    shell: \"true\"\n";
  std::ofstream(state(), std::ios::app);
  auto co = std::make_unique<coordinator_process>(
    std::vector<std::string>{"--pipelines", tmp.path() + "/pipes", "-o", out()}, tmp.path(),
    env());
  troupe::gpu_client gpu{co->url(), "", 500ms};
  auto info = gpu.gpu_info();
  EXPECT_TRUE(info.available) << info.reason;
  EXPECT_EQ(info.gpus.size(), 2u);
  auto l = gpu.lease("embedded", 0, "2Gi", "5m");
  ASSERT_TRUE(l.granted) << l.reason;
  EXPECT_EQ(l.gpus_csv().rfind("GPU-fake-", 0), 0u);
  EXPECT_TRUE(gpu.renew(l.id));
  auto p = gpu.policy();
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)["safe_mode"], false);
  EXPECT_TRUE(gpu.release(l.id));
  EXPECT_FALSE(gpu.release(l.id)) << "released already";
  co.reset();  // the broker is gone
  auto t0 = std::chrono::steady_clock::now();
  auto down = gpu.gpu_info();
  EXPECT_FALSE(down.available);
  EXPECT_NE(down.reason.find("did not answer"), std::string::npos) << down.reason;
  EXPECT_FALSE(gpu.lease("embedded", 1).granted);
  EXPECT_TRUE(gpu.policy()) << "the cached policy, within 30 s";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
  // A listener that never answers: the timeout ends the wait.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  socklen_t len = sizeof at;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len);
  troupe::gpu_client silent{"http://127.0.0.1:" + std::to_string(ntohs(at.sin_port)), "", 500ms};
  auto t1 = std::chrono::steady_clock::now();
  auto none = silent.gpu_info();
  auto took = std::chrono::steady_clock::now() - t1;
  EXPECT_FALSE(none.available);
  EXPECT_GE(took, 400ms);
  EXPECT_LT(took, 1500ms) << "no call blocks past its timeout";
  ::close(fd);
}

// `gpu:` in the coordinator's config file sets the broker's policy;
// TROUPE_GPU_* variables beat it; a wrong key is named.
TEST_F(GpuStages, TheConfigFilesGpuSectionSetsThePolicyAndTheEnvironmentBeatsIt) {
  ::mkdir((tmp.path() + "/pipes").c_str(), 0755);
  std::ofstream(tmp.path() + "/pipes/none.yaml") << "name: none\nstages:\n  - name: a\n"
                                                    "    shell: \"true\"\n";
  std::ofstream(tmp.path() + "/co.yaml")
    << "pipelines: pipes\ngpu:\n  safe_mode: false\n  reserve: 2GiB\n  default_ttl: 10m\n";
  std::vector<std::string> args{"--config", tmp.path() + "/co.yaml", "-o", out()};
  auto e = env(false);
  {
    coordinator_process co(args, tmp.path(), e);
    auto p = body_json(co.client()->Get("/gpu/policy"));
    EXPECT_EQ(p["safe_mode"], false) << p.dump();
    EXPECT_EQ(p["reserve_bytes"], 2LL << 30);
    EXPECT_EQ(p["default_ttl_s"], 600.0);
  }
  {
    auto forced = e;
    forced.push_back("TROUPE_GPU_SAFE_MODE=1");
    coordinator_process co(args, tmp.path(), forced);
    EXPECT_EQ(body_json(co.client()->Get("/gpu/policy"))["safe_mode"], true)
      << "the environment beats the file";
  }
  std::ofstream(tmp.path() + "/bad.yaml") << "pipelines: pipes\ngpu:\n  safe: false\n";
  auto bad = run_troupe({"coordinator", "--config", tmp.path() + "/bad.yaml", "-o", out(),
                         "--listen", "127.0.0.1:0"},
                        tmp.path(), e);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("gpu.safe: unknown setting (gpu settings: safe_mode"), std::string::npos)
    << bad.err;
}

// The sampler records each stage's GPU memory (its processes' NVML figures)
// and which GPUs they are on, in resource_trace.jsonl.
TEST_F(GpuStages, TheTraceRecordsAStagesGpuMemory) {
  std::ofstream(state()).close();
  std::ofstream(tmp.path() + "/p.yaml")
    << "name: traced\nstages:\n  - name: work\n    shell: \"echo proc 1 $$ 3221225472 >> "
    << state() << "; sleep 1\"\n    resources: { gpu_memory: 4Gi }\n";
  auto r = run_troupe({"run", tmp.path() + "/p.yaml", "-o", out(), "--sample-interval", "200ms"},
                      tmp.path(), env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  bool seen = false;
  for (auto& line : read_jsonl(single_run_dir(out()) + "/resource_trace.jsonl")) {
    if (!line.contains("process") || !line["process"].is_object()
        || !line["process"].contains("gpu_memory_bytes"))
      continue;
    if (line["process"]["gpu_memory_bytes"] == 3221225472LL) {
      seen = true;
      EXPECT_EQ(line["process"]["gpus"], json::array({"GPU-fake-1"}));
    }
  }
  EXPECT_TRUE(seen) << "no sample saw the stage's 3 GiB on GPU-fake-1";
}

// troupe gpu serve: the broker of a host without a coordinator, with the
// same /gpu/* endpoints, /health, /ready and /metrics; an exclusive port.
TEST_F(GpuStages, GpuServeAnswersWithoutACoordinator) {
  std::ofstream(state(), std::ios::app);
  troupe_process serve({"gpu", "serve", "--listen", "127.0.0.1:0", "--token", "tok"}, tmp.path(),
                       env());
  int port = listening_port(serve);
  ASSERT_NE(port, 0) << read_file(serve.err_path());
  httplib::Client c("127.0.0.1", port);
  c.set_bearer_token_auth("tok");
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_EQ(c.Get("/ready")->status, 200);
  auto info = body_json(c.Get("/gpu/info"));
  EXPECT_EQ(info["gpus"].size(), 2u) << info.dump();
  auto l = c.Post("/gpu/leases", R"({"holder": "svc", "gpus": 2})", "application/json");
  ASSERT_EQ(l->status, 201) << l->body;
  EXPECT_EQ(body_json(l)["gpus"].size(), 2u);
  httplib::Client anon("127.0.0.1", port);
  EXPECT_EQ(anon.Get("/gpu/info")->status, 401);
  auto m = c.Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("troupe_gpu_leases_active 1"), std::string::npos) << m->body;
  auto file = tmp.write("serve-metrics.txt", m->body);
  EXPECT_EQ(std::system(("promtool check metrics < '" + file + "' > /dev/null 2>&1").c_str()), 0);
  auto second = run_troupe({"gpu", "serve", "--listen", "127.0.0.1:" + std::to_string(port)},
                           tmp.path(), env());
  EXPECT_EQ(second.exit_code, 2) << "the port is taken";
  EXPECT_NE(second.err.find("in use"), std::string::npos) << second.err;
  ::kill(serve.pid(), SIGTERM);
  EXPECT_EQ(serve.wait(10s).exit_code, 0);
}

// A stage that asks more than this host's GPUs have is a pipeline error,
// said before anything is written; without GPUs gpu_fallback decides.
TEST_F(GpuStages, AskingMoreThanTheHostsGpusHaveIsAPipelineError) {
  auto r = run("name: big\nstages:\n  - name: train\n    shell: \"true\"\n"
               "    resources: { gpu_memory: 100Gi }\n  - name: four\n    shell: \"true\"\n"
               "    resources: { gpus: 4 }\n",
               env());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("p.yaml:3: stage 'train': resources.gpu_memory: 100.0 GiB is above every "
                       "GPU's memory here (the largest, GPU-fake-0, has 80.0 GiB)"),
            std::string::npos)
    << r.err;
  EXPECT_NE(r.err.find("p.yaml:6: stage 'four': resources.gpus: 4 asked; this host has 2"),
            std::string::npos)
    << r.err;
  EXPECT_FALSE(exists(out())) << "nothing was written";
  // The coordinator refuses such a launch by name, with a 400.
  ::mkdir((tmp.path() + "/pipes").c_str(), 0755);
  std::ofstream(tmp.path() + "/pipes/big.yaml")
    << "name: big\nstages:\n  - name: train\n    shell: \"true\"\n"
       "    resources: { gpu_memory: 100Gi }\n";
  coordinator_process co({"--pipelines", tmp.path() + "/pipes", "-o", out()}, tmp.path(), env());
  auto launched = co.client()->Post("/api/runs", R"({"pipeline": "big"})", "application/json");
  ASSERT_TRUE(launched);
  EXPECT_EQ(launched->status, 400) << launched->body;
  EXPECT_NE(launched->body.find("asks more than this host's GPUs have"), std::string::npos)
    << launched->body;
  EXPECT_NE(launched->body.find("100.0 GiB is above every GPU's memory here"), std::string::npos);
}

// One broker per GPU on a host: a `troupe gpu serve` that has leased holds
// the host's GPU locks, so a `troupe run` beside it grants none of them (it
// fails or falls back, naming the owner) until the other broker is gone.
TEST_F(GpuStages, TwoBrokersOnOneHostNeverGrantTheSameGpu) {
  std::ofstream(state(), std::ios::app);
  troupe_process serve({"gpu", "serve", "--listen", "127.0.0.1:0"}, tmp.path(), env());
  int port = listening_port(serve);
  ASSERT_NE(port, 0) << read_file(serve.err_path());
  httplib::Client c("127.0.0.1", port);
  auto l = c.Post("/gpu/leases", R"({"holder": "svc", "gpus": 1})", "application/json");
  ASSERT_EQ(l->status, 201) << l->body;
  EXPECT_EQ(read_file(tmp.path() + "/.gpu-locks/troupe-gpu-GPU-fake-1.lock"),
            "process " + std::to_string(serve.pid()) + " (troupe gpu serve)\n")
    << "a broker that leases owns every GPU of the host, leased or not";
  const char* yaml = R"(name: beside
on_failure: continue
stages:
  - name: needs
    shell: "echo ran"
    resources: { gpus: 1 }
  - name: cpu
    depends_on: []
    shell: "echo [$CUDA_VISIBLE_DEVICES]"
    resources: { gpus: 1 }
    gpu_fallback: cpu
)";
  auto r = run(yaml, env());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto m = metadata();
  EXPECT_EQ(stage(m, "needs")["failure_code"], "gpu_unavailable");
  auto why = stage(m, "needs")["error"].get<std::string>();
  EXPECT_NE(why.find("owned by another troupe GPU broker on this host: GPU-fake-0 (process "
                     + std::to_string(serve.pid()) + " (troupe gpu serve))"),
            std::string::npos)
    << why;
  EXPECT_EQ(log("cpu"), "[]\n") << stage(m, "cpu").dump();
  ::kill(serve.pid(), SIGTERM);
  ASSERT_EQ(serve.wait(10s).exit_code, 0);
  // The other broker is gone (and its locks with it): this run's broker owns the GPUs.
  std::system(("rm -rf '" + out() + "'").c_str());
  auto again = run(yaml, env());
  EXPECT_EQ(again.exit_code, 0) << again.err;
  std::smatch g;
  auto got = log("cpu");
  EXPECT_TRUE(std::regex_search(got, g, std::regex("\\[GPU-fake-[01]\\]"))) << got;
}
