// GPU stages through `troupe run`'s own node and broker, on the fake NVML
// library (the one stand-in allowed: CI has no GPU) loaded through the
// real dlopen path: leases and CUDA_VISIBLE_DEVICES, fallbacks, safe mode,
// a missing library, a SIGKILLed job's lease, over-use, and a released
// lease held until NVML shows its processes gone.
#include "tests/support/troupe_process.hpp"

#include <gtest/gtest.h>

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
