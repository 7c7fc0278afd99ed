// The sampler's cost: one host snapshot with the process tree of a stage of
// 50 processes (what a 10 Hz sampler does ten times a second). Run by
// bench/run_benchmarks.sh, which turns the time per snapshot into CPU % at 10 Hz.
#include "adapters/process/process_table.hpp"
#include "adapters/sampling/host_sampler.hpp"

#include <benchmark/benchmark.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

extern char** environ;

namespace {

// A shell leading its own group with 49 sleeping children: 50 processes.
pid_t spawn_stage_of_50() {
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  const char* argv[] = {"/bin/sh", "-c", "for i in $(seq 49); do sleep 60 & done; wait", nullptr};
  pid_t pid = 0;
  posix_spawn(&pid, "/bin/sh", nullptr, &attr, const_cast<char**>(argv), environ);
  posix_spawnattr_destroy(&attr);
  while (troupe::live_tree(pid).size() < 50)
    usleep(10000);
  return pid;
}

void BM_SnapshotWithTreeOf50(benchmark::State& state) {
  auto pid = spawn_stage_of_50();
  troupe::host_sampler sampler{nullptr};
  troupe::sample_request req{"bench", "stage", "sample", pid, {}};
  size_t pids = 0;
  for (auto _ : state) {
    auto snap = sampler.take(req);
    pids = snap.process->pids.size();
    benchmark::DoNotOptimize(snap);
  }
  state.counters["tree_pids"] = static_cast<double>(pids);
  state.counters["host_pids"] = static_cast<double>(troupe::scan_processes().size());
  troupe::signal_tree(pid, "", SIGKILL);
  waitpid(pid, nullptr, 0);
}
BENCHMARK(BM_SnapshotWithTreeOf50)->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();

} // namespace

BENCHMARK_MAIN();
