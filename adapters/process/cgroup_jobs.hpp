// cgroup_jobs: one cgroup v2 per job, when the host lets us create them.
// A job's cgroup holds every process it ever started, including those that
// left its process group with setsid and were orphaned (double-forked
// daemons): its members are the exact tree, `cgroup.kill` ends them all, and
// `cgroup.events` says when none is left. Where no writable cgroup v2
// hierarchy is found, open() returns nothing and troupe falls back to
// process groups (see process_table.hpp).
//
// Where the hierarchy delegates the memory controller, a job with
// limits.memory gets `memory.max`, and `memory.events` tells afterwards
// whether the kernel's OOM killer struck inside it.
//
// Layout: <our own cgroup>/troupe-<pid>/job-<n>/. A child is started inside
// its job's cgroup race-free by moving this process there around the spawn
// and back (children inherit the cgroup at fork; ~0.1 ms measured here).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

class cgroup_jobs {
public:
  /// Looks for a writable cgroup v2 hierarchy (the cgroup2 mount that holds
  /// this process, or $TROUPE_CGROUP_ROOT if set; TROUPE_CGROUP_ROOT=off
  /// disables), creates troupe-<pid> there and checks that this process can
  /// move into it and back. Removes empty troupe-<pid> folders left by dead
  /// troupe processes. On failure returns nothing and says why in `why`.
  static std::unique_ptr<cgroup_jobs> open(std::string& why);

  ~cgroup_jobs();  // removes the (empty) job cgroups and troupe-<pid>

  /// Where the jobs' cgroups live.
  const std::string& base() const {
    return base_;
  }

  /// Creates a new job cgroup, runs `spawn` with this process inside it,
  /// and moves this process back. Returns the job cgroup's path, or "" if
  /// it could not be created or entered (`spawn` then runs outside).
  /// `memory_max` > 0: written to the job's memory.max before the spawn;
  /// `*memory_limited` says whether that took (a memory controller here).
  std::string spawn_inside(const std::function<void()>& spawn, int64_t memory_max = 0,
                           bool* memory_limited = nullptr);

  /// Creates a new job cgroup (with memory.max = `memory_max` where the
  /// memory controller takes it: `*memory_limited`) for a process that
  /// moves itself in (troupe-exec). "" if it could not be created.
  std::string create(int64_t memory_max, bool* memory_limited);

  /// Removes a job cgroup once it is empty; false if it is still populated.
  bool remove(const std::string& job);

  /// The same for a job cgroup of another (dead) troupe, after its members
  /// were killed: waits up to 200 ms for them to leave.
  static bool remove_when_empty(const std::string& job);

  /// The processes in a job cgroup (empty if it is gone).
  static std::vector<int32_t> members(const std::string& job);

  /// The counters of a cgroup's memory.events.
  struct memory_events {
    int64_t max = 0;       // times usage hit memory.max
    int64_t oom = 0;       // times an allocation failed there
    int64_t oom_kill = 0;  // processes the OOM killer killed there
  };
  static memory_events parse_memory_events(const std::string& text);
  /// A job's memory.events; nothing where it has no memory controller.
  static std::optional<memory_events> read_memory_events(const std::string& job);

  /// A job's memory.peak in bytes (Linux 5.19+ with a memory controller);
  /// nothing elsewhere.
  static std::optional<int64_t> read_memory_peak(const std::string& job);

  /// Sends `sig` to every member; SIGKILL goes through cgroup.kill.
  static void signal_all(const std::string& job, int sig);

private:
  cgroup_jobs(std::string home, std::string base);

  std::string home_;  // the cgroup this process lives in
  std::string base_;  // home_/troupe-<pid>
  unsigned next_ = 0;
};

} // namespace troupe
