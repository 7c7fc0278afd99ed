// process_table: one pass over /proc/<pid>/stat for every process of the
// host, and the questions asked of it: which processes make up a stage's
// tree, which are still alive, and signalling all of them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct proc_entry {
  int32_t pid = 0;
  int32_t ppid = 0;
  int32_t pgrp = 0;
  char state = '?';       // R, S, D, Z, T, ...
  std::string comm;
  uint64_t cpu_ticks = 0; // utime + stime, in clock ticks
  int64_t rss_pages = 0;
  uint64_t start_ticks = 0;  // since boot
};

/// Reads every /proc/<pid>/stat (processes that vanish mid-scan are skipped).
std::vector<proc_entry> scan_processes();

/// Parses one /proc/<pid>/stat line; false if it is malformed.
bool parse_stat_line(const std::string& line, proc_entry& out);

/// A stage's tree: members of process group `pgid`, the process `pgid` (its
/// leader), the processes in `also` (its cgroup's members, when it has one),
/// and every descendant of all these; zombies excluded. Sorted by pid.
std::vector<const proc_entry*> tree_of(const std::vector<proc_entry>& table, int32_t pgid,
                                       const std::vector<int32_t>& also = {});

/// Live (non-zombie) members of the tree of `pgid` (and of `cgroup`, a job
/// cgroup's path, if not empty), by a fresh scan.
std::vector<int32_t> live_tree(int32_t pgid, const std::string& cgroup = {});

/// Sends `sig` to the group `pgid`, to each live tree member outside it, and
/// to every member of `cgroup` (SIGKILL: cgroup.kill).
/// Returns how many live processes the tree had just before.
int signal_tree(int32_t pgid, const std::string& cgroup, int sig);

/// Clock ticks per second and page size, read once.
long clock_ticks_per_second();
long page_size_bytes();

} // namespace troupe
