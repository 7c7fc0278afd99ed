// process_runner: starts stage processes and tells when they end, without
// ever blocking the caller. One thread does everything that may block:
// opening log files and posix_spawn, waiting on the kernel (pidfd + epoll),
// reaping with wait4 for status and rusage, fsyncing log files; it runs the
// caller's callbacks there (callbacks typically caf::anon_send to an actor).
//
// Each process gets its own process group (pgid == pid), an empty signal mask
// and default dispositions (the parent blocks SIGINT/SIGTERM for its signal
// thread; children must not inherit that), stdin from /dev/null, and stdout /
// stderr straight into files that the runner keeps open until sync_logs.
#pragma once

#include "messages/job_worker.hpp"

#include <caf/expected.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

struct spawn_request {
  std::vector<std::string> argv;  // argv[0] searched in PATH when it has no '/'
  std::string cwd;
  std::vector<std::string> env;   // "KEY=value"
  std::string stdout_path;
  std::string stderr_path;
  int64_t memory_limit = 0;  // bytes: memory.max of the job cgroup, else RLIMIT_DATA; 0: none
};

/// A started leader: its pid (and process group) and, when troupe could
/// create one, the job cgroup that holds its whole tree.
struct launched_process {
  int32_t pid = 0;
  std::string cgroup;  // empty: tracked by process group only
};

class process_runner {
public:
  using started_callback = std::function<void(caf::expected<launched_process>)>;
  using exit_callback = std::function<void(const process_exit&)>;
  /// "" when the logs are durable, else the first error ("logs/x.stdout.log:
  /// fsync: Input/output error").
  using done_callback = std::function<void(std::string)>;

  /// With `adopt_orphans`, the process becomes a child subreaper
  /// (PR_SET_CHILD_SUBREAPER): grandchildren whose parent died reparent to us
  /// instead of PID 1, stay visible, and are reaped by the runner's thread,
  /// so no zombie of a stage outlives it. The runner then reaps *every* child
  /// of the process: do not combine it with system()/popen() elsewhere.
  ///
  /// With `use_cgroups`, each job is started in a cgroup v2 of its own when
  /// the host allows it (see cgroup_jobs.hpp); tracking() says which.
  ///
  /// `exec_shim` is the troupe-exec program that starts each command and
  /// reports its own rusage (see exec_shim.cpp); empty: find_exec_shim().
  /// Without one, commands start directly and their peak memory is known
  /// from samples only (a directly started child's ru_maxrss holds troupe's).
  process_runner(bool adopt_orphans, bool use_cgroups, std::string exec_shim = {});
  ~process_runner();

  process_runner(const process_runner&) = delete;
  process_runner& operator=(const process_runner&) = delete;

  /// Returns at once. On the runner's thread: opens the log files, spawns,
  /// and watches the process; then `on_started` gets the leader or an
  /// errc::os_error naming what failed (log file, cwd, exec). `on_exit` runs
  /// there once the leader has exited and been reaped.
  void spawn(spawn_request req, started_callback on_started, exit_callback on_exit);

  /// fsyncs and closes `pid`'s log files on the runner's thread, removes its
  /// job cgroup, then calls `done` there. Call after the whole tree has ended.
  void sync_logs(int32_t pid, done_callback done);

  /// How process trees are tracked, for the record: "cgroup v2 (<path>)" or
  /// "process group (<why cgroups are not used>)".
  std::string tracking() const;

  /// The troupe-exec in use, or "" when commands start directly.
  std::string exec_shim() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// troupe-exec: $TROUPE_EXEC_SHIM, else beside the running executable, else
/// where the build put it; "" when none is executable.
std::string find_exec_shim();

} // namespace troupe
