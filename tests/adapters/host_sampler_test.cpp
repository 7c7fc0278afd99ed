// host_sampler on the real /proc, and on the fake NVML library.
#include "adapters/process/process_table.hpp"
#include "adapters/sampling/host_sampler.hpp"
#include "adapters/sampling/topology.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

using namespace troupe;

extern char** environ;

TEST(HostSamplerTest, HostFiguresAndTopFive) {
  host_sampler s{nullptr};
  auto snap = s.take(sample_request{"r", "st", "before", 0, {}});
  EXPECT_EQ(snap.run_id, "r");
  EXPECT_EQ(snap.phase, "before");
  EXPECT_GT(snap.host.mem_total_bytes, 0);
  EXPECT_GT(snap.host.mem_used_bytes, 0);
  EXPECT_LE(snap.host.mem_used_bytes, snap.host.mem_total_bytes);
  EXPECT_GE(snap.host.cpu_percent, 0);
  EXPECT_LE(snap.host.cpu_percent, 100);
  EXPECT_FALSE(snap.process);
  ASSERT_FALSE(snap.top.empty());
  EXPECT_LE(snap.top.size(), 5u);
  for (size_t i = 1; i < snap.top.size(); ++i)
    EXPECT_GE(snap.top[i - 1].rss_bytes, snap.top[i].rss_bytes) << "sorted by RSS";
  EXPECT_TRUE(snap.gpus.empty());
}

TEST(HostSamplerTest, SeesAProcessGroupAndItsChildren) {
  // sh leads its own group with three sleeping children.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  const char* argv[] = {"/bin/sh", "-c", "sleep 5 & sleep 5 & sleep 5 & wait", nullptr};
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, &attr, const_cast<char**>(argv), environ), 0);
  posix_spawnattr_destroy(&attr);
  host_sampler s{nullptr};
  caf::optional<tree_figures> tree;
  for (int i = 0; i < 100; ++i) {
    tree = s.take(sample_request{"r", "st", "sample", pid, {}}).process;
    if (tree && tree->pids.size() == 4)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(tree);
  EXPECT_EQ(tree->pids.size(), 4u);
  EXPECT_EQ(tree->pids.front(), pid);
  EXPECT_GT(tree->rss_bytes, 0);
  EXPECT_EQ(live_tree(pid).size(), 4u);
  EXPECT_EQ(signal_tree(pid, "", SIGKILL), 4);
  ::waitpid(pid, nullptr, 0);
}

TEST(HostSamplerTest, ReadsGpusThroughNvml) {
  auto gpus = open_nvml(TROUPE_FAKE_NVML);
  EXPECT_EQ(gpus->status(), "");
  host_sampler s{gpus};
  auto snap = s.take(sample_request{"r", "st", "before", 0, {}});
  ASSERT_EQ(snap.gpus.size(), 2u);
  EXPECT_EQ(snap.gpus[0].name, "Fake GPU A");
  EXPECT_EQ(snap.gpus[0].uuid, "GPU-fake-0");
  EXPECT_EQ(snap.gpus[0].util_percent, 37);
  EXPECT_EQ(snap.gpus[1].mem_used_bytes, 2LL << 30);
  EXPECT_EQ(snap.gpus[1].mem_total_bytes, 80LL << 30);
  EXPECT_EQ(snap.gpus[0].temperature_c, 41);
}

// The fake NVML's state file: processes with their GPU memory, injected errors.
struct FakeNvmlState {
  std::string path = "/tmp/troupe-fake-nvml-" + std::to_string(::getpid());
  explicit FakeNvmlState(const std::string& lines) {
    std::ofstream(path) << lines;
    ::setenv("TROUPE_FAKE_NVML_STATE", path.c_str(), 1);
  }
  ~FakeNvmlState() {
    ::unsetenv("TROUPE_FAKE_NVML_STATE");
    std::remove(path.c_str());
  }
};

TEST(HostSamplerTest, NvmlGivesEachGpusProcessesPowerMigAndDriver) {
  FakeNvmlState state{"proc 1 4242 3221225472\nproc 1 4343 1073741824\n"};
  auto gpus = open_nvml(TROUPE_FAKE_NVML);
  ASSERT_EQ(gpus->status(), "");
  EXPECT_EQ(gpus->driver_version(), "999.99-fake");
  auto all = gpus->read();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(all[0].processes.empty());
  ASSERT_EQ(all[1].processes.size(), 2u);
  EXPECT_EQ(all[1].processes[0].pid, 4242);
  EXPECT_EQ(all[1].processes[0].used_bytes, 3LL << 30);
  EXPECT_EQ(all[1].mem_used_bytes, (2LL << 30) + (4LL << 30)) << "base plus its processes";
  EXPECT_EQ(all[1].mem_free_bytes, (80LL << 30) - (6LL << 30));
  EXPECT_EQ(all[0].power_watts, 70.0);
  EXPECT_EQ(all[0].mig_mode, "disabled");
  EXPECT_EQ(all[1].pci_bus_id, "00000000:3C:00.0");
  // (hwloc does not see the fake's PCI devices: no locality.)
  EXPECT_EQ(all[1].numa_node, -1);
}

TEST(HostSamplerTest, NvmlErrorsAreNamedAndOptionalCallsMayFail) {
  {
    FakeNvmlState state{"fail init 999\n"};
    auto gpus = open_nvml(TROUPE_FAKE_NVML);
    EXPECT_EQ(gpus->status(), "nvmlInit_v2 failed: Unknown Error (code 999)");
    EXPECT_TRUE(gpus->read().empty());
  }
  FakeNvmlState state{"nomig\nfail power 3\nfail processes 999\n"};
  auto gpus = open_nvml(TROUPE_FAKE_NVML);
  auto all = gpus->read();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].mig_mode, "unsupported");
  EXPECT_EQ(all[0].power_watts, -1);
  EXPECT_TRUE(all[0].processes.empty());
  EXPECT_EQ(all[0].mem_total_bytes, 80LL << 30) << "the rest is read all the same";
}

TEST(HostSamplerTest, MissingNvmlMeansNoGpusAndSaysWhy) {
  auto gpus = open_nvml("/nonexistent/libnvidia-ml.so.1");
  EXPECT_TRUE(gpus->read().empty());
  EXPECT_NE(gpus->status().find("not loaded"), std::string::npos) << gpus->status();
}

TEST(TopologyTest, ReadsHostInfo) {
  auto h = read_host_info();
  EXPECT_FALSE(h.hostname.empty());
  EXPECT_GT(h.pus, 0);
  EXPECT_GT(h.cores, 0);
  EXPECT_GE(h.numa_nodes, 1);
  EXPECT_GT(h.mem_total_bytes, 0);
}
