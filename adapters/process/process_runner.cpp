#include "adapters/process/process_runner.hpp"
#include "adapters/threads/thread_name.hpp"

#include "adapters/process/cgroup_jobs.hpp"

#include "messages/errors.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

extern char** environ;

namespace troupe {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

double seconds_of(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// What troupe-exec wrote on its report pipe (see exec_shim.cpp).
struct shim_report {
  bool started = false;
  int spawn_errno = 0;
  int cgroup_errno = 0;  // it could not enter the job cgroup
  bool ended = false;
  int wait_status = 0;
  long long user_us = 0;
  long long system_us = 0;
  long long max_rss_kib = 0;
};

void parse_report(const std::string& text, shim_report& r) {
  size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string::npos)
      break;
    auto line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() < 2)
      continue;
    if (line[0] == 'G') {
      r.cgroup_errno = std::atoi(line.c_str() + 2);
    } else if (line[0] == 'S') {
      r.started = true;
    } else if (line[0] == 'E') {
      r.spawn_errno = std::atoi(line.c_str() + 2);
    } else if (line[0] == 'X') {
      r.ended = std::sscanf(line.c_str() + 2, "%d %lld %lld %lld", &r.wait_status, &r.user_us,
                            &r.system_us, &r.max_rss_kib)
                == 4;
    }
  }
}

// Reads what is there without waiting (the pipe is non-blocking).
std::string drain(int fd) {
  std::string out;
  char buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    return out;
  }
}

// The last `max` bytes of a file (a failed stage's stderr).
std::string tail_of(const std::string& path, size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return {};
  struct stat st{};
  std::string out;
  if (::fstat(fd, &st) == 0) {
    auto size = static_cast<size_t>(st.st_size);
    auto from = size > max ? size - max : 0;
    out.resize(size - from);
    auto n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(from));
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  ::close(fd);
  return out;
}

bool executable(const std::string& path) {
  return !path.empty() && ::access(path.c_str(), X_OK) == 0;
}

} // namespace

std::string find_exec_shim() {
  if (const char* env = std::getenv("TROUPE_EXEC_SHIM"))
    return executable(env) ? std::string(env) : std::string{};
  char self[4096];
  auto n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string dir(self, static_cast<size_t>(n));
    dir = dir.substr(0, dir.rfind('/'));
    if (executable(dir + "/troupe-exec"))
      return dir + "/troupe-exec";
  }
#ifdef TROUPE_EXEC_SHIM_BUILT
  if (executable(TROUPE_EXEC_SHIM_BUILT))
    return TROUPE_EXEC_SHIM_BUILT;
#endif
  return {};
}

struct process_runner::impl {
  struct watched {
    int pidfd = -1;
    int report = -1;  // troupe-exec's report pipe, or -1
    std::string reported;  // read from it already (the "S" line, maybe more)
    int64_t memory_limit = 0;
    std::string stderr_path;
    exit_callback on_exit;
  };
  struct logs {
    int out = -1;
    int err = -1;
    std::string cgroup;  // removed with the logs' sync
    std::string out_path;
    std::string err_path;
  };

  bool adopt_orphans;
  std::string shim;
  std::unique_ptr<cgroup_jobs> cgroups;
  std::string tracking;
  int ep = -1;
  int wake = -1;
  std::atomic<bool> stop{false};
  // Touched only on the runner's thread.
  std::unordered_map<int32_t, watched> by_pid;
  std::unordered_map<int32_t, logs> open_logs;
  // The queue of work posted from other threads.
  std::mutex mtx;
  std::deque<std::function<void()>> tasks;
  std::thread thread;

  impl(bool adopt, bool use_cgroups, std::string exec_shim)
    : adopt_orphans(adopt), shim(exec_shim.empty() ? find_exec_shim() : std::move(exec_shim)) {
    if (adopt_orphans)
      ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    std::string why = "cgroups not requested";
    if (use_cgroups)
      cgroups = cgroup_jobs::open(why);
    tracking = cgroups ? "cgroup v2 (" + cgroups->base() + ")" : "process group (" + why + ")";
    ep = ::epoll_create1(EPOLL_CLOEXEC);
    wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, wake, &ev);
    thread = std::thread([this] {
      name_this_thread("proc-reaper");
      loop();
    });
  }

  ~impl() {
    stop = true;
    poke();
    thread.join();
    for (auto& [pid, l] : open_logs) {
      ::close(l.out);
      ::close(l.err);
    }
    for (auto& [pid, w] : by_pid) {
      ::close(w.pidfd);
      if (w.report >= 0)
        ::close(w.report);
    }
    ::close(ep);
    ::close(wake);
  }

  void poke() {
    uint64_t one = 1;
    (void) !::write(wake, &one, sizeof one);
  }

  void post(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      tasks.push_back(std::move(f));
    }
    poke();
  }

  // Reaps `pid` (known to be a zombie) and reports it if it is watched.
  void reap(int32_t pid) {
    int status = 0;
    rusage ru{};
    if (::wait4(pid, &status, WNOHANG, &ru) != pid)
      return;
    auto it = by_pid.find(pid);
    if (it == by_pid.end())
      return;  // an adopted orphan: reaped, nothing to report
    auto w = std::move(it->second);
    by_pid.erase(it);
    if (w.pidfd >= 0) {
      ::epoll_ctl(ep, EPOLL_CTL_DEL, w.pidfd, nullptr);
      ::close(w.pidfd);
    }
    process_exit info;
    info.pid = pid;
    info.wait_status = status;
    info.cpu_seconds = seconds_of(ru.ru_utime) + seconds_of(ru.ru_stime);
    // ru.ru_maxrss is never used: the leader's high-water mark starts at
    // troupe's own (or troupe-exec's) when it execs.
    if (w.report >= 0) {
      shim_report rep;
      parse_report(w.reported + drain(w.report), rep);
      ::close(w.report);
      if (rep.ended) {
        // The program's own figures, as troupe-exec's wait4 saw them.
        info.wait_status = rep.wait_status;
        info.cpu_seconds = static_cast<double>(rep.user_us + rep.system_us) / 1e6;
        info.max_rss_bytes = rep.max_rss_kib * 1024;
      }
    }
    auto lg = open_logs.find(pid);
    if (lg != open_logs.end() && !lg->second.cgroup.empty()) {
      if (auto ev = cgroup_jobs::read_memory_events(lg->second.cgroup)) {
        info.oom_kills = ev->oom_kill;
        info.oom_events = ev->oom;
      }
      if (auto peak = cgroup_jobs::read_memory_peak(lg->second.cgroup))
        info.max_rss_bytes = *peak;
    }
    bool failed = !(WIFEXITED(info.wait_status) && WEXITSTATUS(info.wait_status) == 0);
    if (failed && w.memory_limit > 0)
      info.stderr_tail = tail_of(w.stderr_path, 2048);
    w.on_exit(info);
  }

  // Reaps every child that has exited: the watched ones reported, adopted
  // orphans silently (only when adopting). WNOWAIT peeks without reaping, so
  // a watched child is always reaped here, with its rusage. Spawning happens
  // on this thread too, so no child can be reaped before it is registered.
  void sweep() {
    if (!adopt_orphans) {
      std::vector<int32_t> ready;
      for (auto& [pid, w] : by_pid) {
        siginfo_t si{};
        if (::waitid(P_PID, static_cast<id_t>(pid), &si,
                     WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
          ready.push_back(pid);
      }
      for (auto pid : ready)
        reap(pid);
      return;
    }
    for (;;) {
      siginfo_t si{};
      if (::waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
        return;
      reap(si.si_pid);
    }
  }

  caf::expected<launched_process> start(const spawn_request& req, exit_callback on_exit);

  void loop() {
    epoll_event evs[32];
    while (!stop) {
      // A timeout so that adopted orphans are reaped even though no pidfd
      // of ours fires for them.
      int n = ::epoll_wait(ep, evs, 32, adopt_orphans ? 500 : -1);
      for (int i = 0; i < n; ++i) {
        if (evs[i].data.fd == wake) {
          uint64_t v;
          (void) !::read(wake, &v, sizeof v);
        }
      }
      std::deque<std::function<void()>> todo;
      {
        std::lock_guard<std::mutex> guard{mtx};
        todo.swap(tasks);
      }
      for (auto& f : todo)
        f();
      sweep();
    }
  }
};

process_runner::process_runner(bool adopt_orphans, bool use_cgroups, std::string exec_shim)
  : impl_(std::make_unique<impl>(adopt_orphans, use_cgroups, std::move(exec_shim))) {
}

std::string process_runner::tracking() const {
  return impl_->tracking;
}

std::string process_runner::exec_shim() const {
  return impl_->shim;
}

process_runner::~process_runner() = default;

void process_runner::spawn(spawn_request req, started_callback on_started,
                           exit_callback on_exit) {
  auto* self = impl_.get();
  impl_->post([self, req = std::move(req), on_started = std::move(on_started),
               on_exit = std::move(on_exit)]() mutable {
    on_started(self->start(req, std::move(on_exit)));
  });
}

caf::expected<launched_process> process_runner::impl::start(const spawn_request& req,
                                                            exit_callback on_exit) {
  if (req.argv.empty() || req.argv[0].empty())
    return caf::make_error(errc::bad_input, "empty command");
  struct stat st{};
  if (::stat(req.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return caf::make_error(errc::os_error, "working directory '" + req.cwd
                                             + "' does not exist or is not a directory");
  auto open_log = [](const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    // The state probes' logs have a folder of their own, logs/probes/,
    // made on first use (any other missing folder stays an error).
    if (fd < 0 && errno == ENOENT) {
      auto slash = path.rfind('/');
      bool probes = slash != std::string::npos && slash >= 13
                    && path.compare(slash - 12, 12, "/logs/probes") == 0;
      if (probes && ::mkdir(path.substr(0, slash).c_str(), 0755) == 0)
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      else
        errno = ENOENT;
    }
    return fd;
  };
  int out = open_log(req.stdout_path);
  if (out < 0)
    return caf::make_error(errc::os_error, "cannot open log '" + req.stdout_path
                                             + "': " + errno_text(errno));
  int err = open_log(req.stderr_path);
  if (err < 0) {
    int e = errno;
    ::close(out);
    return caf::make_error(errc::os_error, "cannot open log '" + req.stderr_path
                                             + "': " + errno_text(e));
  }

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawn_file_actions_adddup2(&fa, err, 2);
  posix_spawn_file_actions_addchdir_np(&fa, req.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2})
    sigaddset(&dflt, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &dflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                    | POSIX_SPAWN_SETSIGDEF);
  // Through troupe-exec where there is one: it reports the program's own
  // rusage on a pipe that it sees as fd 3.
  int report[2] = {-1, -1};
  std::string reported;  // what troupe-exec said before the spawn returned
  std::vector<std::string> full;
  std::string cgroup;
  bool memory_limited = false;  // by the job cgroup's memory.max
  if (!shim.empty() && ::pipe2(report, O_CLOEXEC) == 0) {
    posix_spawn_file_actions_adddup2(&fa, report[1], 3);  // dup2 clears CLOEXEC
    // troupe-exec enters the job cgroup itself, before the command exists.
    if (cgroups)
      cgroup = cgroups->create(req.memory_limit, &memory_limited);
    full = {shim, "3", std::to_string(req.memory_limit), cgroup.empty() ? "-" : cgroup,
            memory_limited ? "1" : "0"};
  }
  full.insert(full.end(), req.argv.begin(), req.argv.end());
  std::vector<char*> argv;
  for (auto& a : full)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : req.env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = 0;
  int rc = 0;
  auto do_spawn = [&] {
    bool search = full[0].find('/') == std::string::npos;
    rc = search ? ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data())
                : ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  };
  if (cgroups && report[0] < 0)
    // Without troupe-exec: troupe moves itself into the job cgroup around
    // the spawn (its threads are briefly charged to the job).
    cgroup = cgroups->spawn_inside(do_spawn, req.memory_limit, &memory_limited);
  else
    do_spawn();
  if (report[1] >= 0)
    ::close(report[1]);
  if (rc == 0 && report[0] >= 0) {
    // Wait (on this thread) for troupe-exec to say whether the program
    // started: a command that does not exist still fails at spawn.
    auto& text = reported;
    shim_report rep;
    char buf[128];
    while (!rep.started && rep.spawn_errno == 0) {
      ssize_t n = ::read(report[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;  // troupe-exec died before it could say
      text.append(buf, static_cast<size_t>(n));
      parse_report(text, rep);
    }
    if (rep.cgroup_errno != 0 && !cgroup.empty()) {
      // It runs outside the cgroup (and under RLIMIT_DATA): say so by
      // tracking it by process group, as the record will.
      cgroups->remove(cgroup);
      cgroup.clear();
      memory_limited = false;
    }
    if (!rep.started) {
      int status = 0;
      ::waitpid(pid, &status, 0);  // it exits at once
      ::close(report[0]);
      report[0] = -1;
      rc = rep.spawn_errno != 0 ? rep.spawn_errno : ECHILD;
    } else {
      ::fcntl(report[0], F_SETFL, O_NONBLOCK);
    }
  }
  if (rc != 0 && !cgroup.empty()) {
    cgroups->remove(cgroup);
    cgroup.clear();
  }
  if (rc == 0 && report[0] < 0 && req.memory_limit > 0 && !memory_limited) {
    // Without a memory controller: limits.memory as RLIMIT_DATA (heap and
    // private mappings), inherited by the leader's children. Set right after
    // exec: posix_spawn has no hook before it, so the first moments of the
    // program run unlimited.
    rlimit lim{static_cast<rlim_t>(req.memory_limit), static_cast<rlim_t>(req.memory_limit)};
    ::prlimit(pid, RLIMIT_DATA, &lim, nullptr);
  }
  if (rc == 0) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    by_pid[pid] = watched{pidfd, report[0], reported, req.memory_limit,
                          req.stderr_path, std::move(on_exit)};
    open_logs[pid] = logs{out, err, cgroup, req.stdout_path, req.stderr_path};
    if (pidfd >= 0) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = pidfd;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, pidfd, &ev);
    }
  }
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    ::close(out);
    ::close(err);
    return caf::make_error(errc::os_error, "cannot start '" + req.argv[0]
                                             + "': " + errno_text(rc));
  }
  return launched_process{static_cast<int32_t>(pid), cgroup};
}

namespace {

// Less than this left where a log lives: a write may have failed. (root may
// write into the blocks reserved for it, so it counts them; others do not.)
constexpr uint64_t full_below = 64 << 10;

bool filesystem_full(int fd) {
  struct statvfs fs {};
  if (::fstatvfs(fd, &fs) != 0 || fs.f_blocks == 0)
    return false;
  uint64_t blocks = ::geteuid() == 0 ? fs.f_bfree : fs.f_bavail;
  return blocks * fs.f_frsize < full_below;
}

} // namespace

void process_runner::sync_logs(int32_t pid, done_callback done) {
  auto* self = impl_.get();
  impl_->post([self, pid, done = std::move(done)] {
    impl::logs l;
    if (auto it = self->open_logs.find(pid); it != self->open_logs.end()) {
      l = it->second;
      self->open_logs.erase(it);
    }
    std::string error;
    for (auto [fd, path] : {std::pair{l.out, &l.out_path}, std::pair{l.err, &l.err_path}}) {
      if (fd < 0)
        continue;
      // A log that is not durable is a record troupe could not keep: the
      // first fsync or close error is reported, never ignored.
      if (::fsync(fd) != 0 && error.empty())
        error = *path + ": fsync: " + errno_text(errno);
      // The process writes its logs itself: a write that failed for lack
      // of space is the process's error, never seen here. A filesystem that
      // is full when the stage ends means its logs may be cut.
      if (error.empty() && filesystem_full(fd))
        error = *path + ": " + errno_text(ENOSPC)
                + " (the run folder's filesystem filled during the stage: its logs may be cut)";
      if (::close(fd) != 0 && error.empty())
        error = *path + ": close: " + errno_text(errno);
    }
    if (!l.cgroup.empty())
      self->cgroups->remove(l.cgroup);
    done(std::move(error));
  });
}

} // namespace troupe
