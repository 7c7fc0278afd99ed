#include "actors/job_worker.hpp"

#include "adapters/process/process_runner.hpp"
#include "adapters/process/process_table.hpp"
#include "messages/errors.hpp"

#include <caf/all.hpp>

#include <csignal>
#include <cstring>
#include <sys/wait.h>

namespace troupe {

namespace {

using namespace std::chrono_literals;

/// How often the group is checked while leftovers are being stopped.
constexpr auto leftover_poll = 20ms;
/// After SIGKILL, how long to wait for the tree to vanish before giving up
/// (a process stuck in uninterruptible sleep cannot be killed).
constexpr auto after_kill_limit = 10s;

enum class stop_reason { none, timeout, cancel, leftovers };

struct job_state {
  std::shared_ptr<process_runner> runner;
  job_listener_actor listener;
  caf::strong_actor_ptr requester;
  job_spec spec;
  caf::typed_response_promise<job_result> rp;
  job_result result;
  std::chrono::steady_clock::time_point t0;
  std::chrono::steady_clock::time_point deadline;  // the stage timeout, from the leader's start
  std::chrono::steady_clock::time_point killed_at;
  int32_t pid = 0;
  std::string cgroup;  // the job's cgroup, or "" (process group only)
  bool started = false;
  bool cancel_requested = false;  // before the leader was launched
  bool leader_exited = false;
  bool finalizing = false;
  bool killed = false;
  stop_reason reason = stop_reason::none;
  static inline const char* name = "job_worker";
};

/// The public interface plus what only this file sends: the process
/// adapter's thread (launched, launch_failed, exited, synced) and the
/// worker's own timers (timeout, kill, poll).
using job_worker_impl = job_worker_actor::extend<
  caf::reacts_to<launched_atom, int32_t, std::string>,
  caf::reacts_to<launch_failed_atom, std::string>,
  caf::reacts_to<exited_atom, process_exit>,
  caf::reacts_to<synced_atom, int32_t, std::string>,
  caf::reacts_to<timeout_atom>,
  caf::reacts_to<kill_atom>,
  caf::reacts_to<poll_atom>>;

using self_ptr = job_worker_impl::stateful_pointer<job_state>;

std::string seconds_text(caf::timespan d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// The phrase in a failed program's last stderr bytes that says an
// allocation was refused, or "": what C (strerror ENOMEM), C++, Python, the
// JVM, Go and Rust print.
std::string allocation_failure_in(const std::string& tail) {
  for (const char* phrase : {"Cannot allocate memory", "MemoryError", "std::bad_alloc",
                             "OutOfMemoryError", "out of memory", "memory allocation of"}) {
    if (tail.find(phrase) != std::string::npos)
      return phrase;
  }
  return {};
}

// Decides the result from how the leader ended and why we stopped it.
void classify(job_state& st, const process_exit& info) {
  auto& r = st.result;
  int ws = info.wait_status;
  if (WIFEXITED(ws))
    r.exit_code = WEXITSTATUS(ws);
  else if (WIFSIGNALED(ws))
    r.signal = WTERMSIG(ws);
  r.cpu_seconds = info.cpu_seconds;
  r.max_rss_bytes = info.max_rss_bytes;
  auto how = [&] {
    if (r.signal)
      return std::string("ended by signal ") + std::to_string(*r.signal) + " ("
             + ::strsignal(*r.signal) + ")";
    return "exited with code " + std::to_string(r.exit_code ? *r.exit_code : -1);
  };
  switch (st.reason) {
    case stop_reason::timeout:
      r.status = stage_status::timed_out;
      r.failure = failure_code::timeout;
      r.error = "timed out after " + seconds_text(st.spec.timeout) + "; "
                + (st.killed ? "SIGKILL after " + seconds_text(st.spec.grace) + " grace"
                             : std::string("stopped by SIGTERM"))
                + "; leader " + how();
      return;
    case stop_reason::cancel:
      r.status = stage_status::cancelled;
      r.failure = failure_code::cancelled;
      r.error = "cancelled; leader " + how();
      return;
    case stop_reason::none:
    case stop_reason::leftovers:
      break;
  }
  auto limit = st.spec.memory_limit;
  auto refusal = limit > 0 ? allocation_failure_in(info.stderr_tail) : std::string{};
  if (r.exit_code && *r.exit_code == 0) {
    r.status = stage_status::succeeded;
  } else if (info.oom_kills > 0) {
    // The job's cgroup says so: the kernel's OOM killer struck inside it.
    r.status = stage_status::failed;
    r.failure = failure_code::oom;
    r.error = how() + "; the OOM killer killed " + std::to_string(info.oom_kills)
              + " process(es) in its cgroup (memory.events)";
  } else if (info.oom_events > 0) {
    // memory.max refused an allocation inside the job's cgroup.
    r.status = stage_status::failed;
    r.failure = failure_code::oom;
    r.error = how() + "; its cgroup reached memory.max " + std::to_string(limit >> 20)
              + " MiB (memory.events oom " + std::to_string(info.oom_events) + ")";
  } else if (limit > 0 && info.max_rss_bytes * 5 >= limit * 4) {
    // Failed with its own peak RSS at 80 % of limits.memory or more.
    r.status = stage_status::failed;
    r.failure = failure_code::oom;
    r.error = how() + " with peak RSS " + std::to_string(info.max_rss_bytes >> 20)
              + " MiB against limits.memory " + std::to_string(limit >> 20) + " MiB";
  } else if (!refusal.empty()) {
    // Under RLIMIT_DATA a refused allocation leaves no trace in the figures
    // (the memory was never had): the program's own last words say it.
    r.status = stage_status::failed;
    r.failure = failure_code::oom;
    r.error = how() + "; its stderr reports a refused allocation ('" + refusal
              + "') under limits.memory " + std::to_string(limit >> 20) + " MiB";
  } else if (r.exit_code) {
    r.status = stage_status::failed;
    r.failure = failure_code::exit_nonzero;
    r.error = how();
  } else {
    r.status = stage_status::failed;
    r.failure = failure_code::signaled;
    r.error = how();
  }
}

void finalize(self_ptr self) {
  auto& st = self->state;
  if (st.finalizing)
    return;
  st.finalizing = true;
  auto me = caf::actor_cast<job_worker_impl>(self);
  auto pid = st.pid;
  st.runner->sync_logs(pid, [me, pid](std::string error) {
    caf::anon_send(me, synced_atom_v, pid, std::move(error));
  });
}

// SIGTERM to the tree now, SIGKILL after the grace period.
void stop_tree(self_ptr self, stop_reason why) {
  auto& st = self->state;
  if (st.reason != stop_reason::none)
    return;
  st.reason = why;
  signal_tree(st.pid, st.cgroup, SIGTERM);
  self->delayed_send(self, st.spec.grace, kill_atom_v);
}

// After the leader exited: wait for the rest of the tree, stopping it.
void check_tree(self_ptr self) {
  auto& st = self->state;
  auto live = live_tree(st.pid, st.cgroup);
  if (live.empty()) {
    finalize(self);
    return;
  }
  if (st.killed && std::chrono::steady_clock::now() - st.killed_at > after_kill_limit) {
    st.result.error += (st.result.error.empty() ? "" : "; ")
                       + std::to_string(live.size())
                       + " process(es) survived SIGKILL (uninterruptible?)";
    finalize(self);
    return;
  }
  if (st.reason == stop_reason::none) {
    st.result.leftovers_killed = static_cast<int32_t>(live.size());
    stop_tree(self, stop_reason::leftovers);
  }
  self->delayed_send(self, leftover_poll, poll_atom_v);
}

void cancel_job(self_ptr self) {
  auto& st = self->state;
  if (st.pid == 0) {
    st.cancel_requested = true;  // acted on when the leader is launched
    return;
  }
  // Once the leader has exited, its result stands and check_tree is
  // already stopping any leftovers: nothing for a cancel to add.
  if (st.leader_exited)
    return;
  stop_tree(self, stop_reason::cancel);
}

} // namespace

// The stage's timeout, in steps of at most a second: a delayed message
// keeps its receiver alive until it is delivered, and one of the full
// timeout (an hour by default) kept every finished worker in memory that
// long (a coordinator running 200 jobs a second grew by 2 KB a job).
void arm_timeout(self_ptr self) {
  auto left = self->state.deadline - std::chrono::steady_clock::now();
  auto step = std::min<std::chrono::steady_clock::duration>(left, std::chrono::seconds(1));
  self->delayed_send(self, std::max<std::chrono::steady_clock::duration>(step, {}), timeout_atom_v);
}

// Ends the worker. Its monitor on the requester goes first: a monitor
// outlives the monitoring actor (CAF 0.17), and each one kept a finished
// worker's memory until the requester, often the long-lived node, ended.
void done(self_ptr self) {
  if (self->state.requester)
    self->demonitor(caf::actor_cast<caf::actor_addr>(self->state.requester));
  self->quit();
}

job_worker_impl::behavior_type job_worker(self_ptr self,
                                           std::shared_ptr<process_runner> runner,
                                           job_listener_actor listener) {
  self->state.runner = std::move(runner);
  self->state.listener = std::move(listener);
  self->set_down_handler([=](caf::down_msg& dm) {
    if (dm.source == caf::actor_cast<caf::actor_addr>(self->state.requester))
      cancel_job(self);
  });
  return {
    [=](start_atom, job_spec& spec) -> caf::result<job_result> {
      auto& st = self->state;
      if (st.started)
        return caf::make_error(errc::bad_state, "job_worker runs one job");
      st.started = true;
      // Whoever asked for the job owns it: when the requester dies (a crashed
      // run_supervisor, a lost coordinator), the job is stopped as if
      // cancelled rather than left running for nobody.
      st.requester = self->current_sender();
      if (st.requester)
        self->monitor(st.requester);
      st.spec = std::move(spec);
      st.result.name = st.spec.name;
      st.result.started_at = caf::make_timestamp();
      st.t0 = std::chrono::steady_clock::now();
      auto me = caf::actor_cast<job_worker_impl>(self);
      spawn_request req{st.spec.argv,        st.spec.cwd,         st.spec.env,
                        st.spec.stdout_path, st.spec.stderr_path, st.spec.memory_limit};
      st.runner->spawn(
        std::move(req),
        [me](caf::expected<launched_process> p) {
          if (p)
            caf::anon_send(me, launched_atom_v, p->pid, p->cgroup);
          else
            caf::anon_send(me, launch_failed_atom_v, describe(p.error()));
        },
        [me](const process_exit& info) { caf::anon_send(me, exited_atom_v, info); });
      st.rp = self->make_response_promise<job_result>();
      return st.rp;
    },
    [=](launched_atom, int32_t pid, std::string& cgroup) {
      auto& st = self->state;
      st.pid = pid;
      st.cgroup = std::move(cgroup);
      st.result.pid = pid;
      if (st.listener)
        self->send(st.listener, spawned_atom_v, st.spec.name, pid, st.cgroup);
      if (st.cancel_requested)
        stop_tree(self, stop_reason::cancel);
      else if (st.spec.timeout.count() > 0) {
        st.deadline = std::chrono::steady_clock::now() + st.spec.timeout;
        arm_timeout(self);
      }
    },
    [=](launch_failed_atom, std::string& why) {
      auto& st = self->state;
      auto& r = st.result;
      r.status = stage_status::failed;
      r.failure = failure_code::spawn_failed;
      r.error = std::move(why);
      r.finished_at = caf::make_timestamp();
      r.duration = std::chrono::steady_clock::now() - st.t0;
      st.rp.deliver(r);
      done(self);
    },
    [=](cancel_atom) { cancel_job(self); },
    [=](timeout_atom) {
      auto& st = self->state;
      if (st.leader_exited || st.finalizing)
        return;
      if (std::chrono::steady_clock::now() < st.deadline) {
        arm_timeout(self);
        return;
      }
      stop_tree(self, stop_reason::timeout);
    },
    [=](kill_atom) {
      auto& st = self->state;
      if (st.finalizing)
        return;
      st.killed = true;
      st.killed_at = std::chrono::steady_clock::now();
      signal_tree(st.pid, st.cgroup, SIGKILL);
    },
    [=](kill_atom, const std::string&) {
      // Over limits.memory (the requester classifies the result): the tree
      // goes now, with no grace. Before the leader runs there is nothing to
      // kill; a cancel is remembered instead.
      auto& st = self->state;
      if (st.finalizing)
        return;
      if (st.pid == 0) {
        st.cancel_requested = true;
        return;
      }
      st.killed = true;
      st.killed_at = std::chrono::steady_clock::now();
      signal_tree(st.pid, st.cgroup, SIGKILL);
    },
    [=](exited_atom, const process_exit& info) {
      auto& st = self->state;
      st.leader_exited = true;
      classify(st, info);
      check_tree(self);
    },
    [=](poll_atom) {
      if (!self->state.finalizing)
        check_tree(self);
    },
    [=](synced_atom, int32_t, std::string& error) {
      auto& st = self->state;
      // Logs are complete and durable: the tree is gone and they are fsynced
      // (or `error` says why they could not be).
      st.result.log_error = std::move(error);
      st.result.finished_at = caf::make_timestamp();
      st.result.duration = std::chrono::steady_clock::now() - st.t0;
      st.rp.deliver(st.result);
      done(self);
    },
  };
}

job_worker_actor spawn_job_worker(caf::actor_system& sys,
                                  std::shared_ptr<process_runner> runner,
                                  job_listener_actor listener) {
  return caf::actor_cast<job_worker_actor>(
    sys.spawn(job_worker, std::move(runner), std::move(listener)));
}

} // namespace troupe
