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

/// A stage's tree: members of process group `pgid` plus every descendant of
/// the process `pgid` (its leader), zombies excluded. Sorted by pid.
std::vector<const proc_entry*> tree_of(const std::vector<proc_entry>& table,
                                       int32_t pgid);

/// Live (non-zombie) members of the tree of `pgid`, by a fresh scan.
std::vector<int32_t> live_tree(int32_t pgid);

/// Sends `sig` to the group `pgid` and to each live tree member outside it.
/// Returns how many live processes the tree had just before.
int signal_tree(int32_t pgid, int sig);

/// Clock ticks per second and page size, read once.
long clock_ticks_per_second();
long page_size_bytes();

} // namespace troupe
