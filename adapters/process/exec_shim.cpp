// troupe-exec: the first process of every stage, so that the stage's figures
// are its own. A program started straight from troupe inherits troupe's
// memory high-water mark at exec (Linux keeps the old mm's peak in
// ru_maxrss), so `true` looked like 17 MB. This shim is tiny: the program it
// starts inherits only its ~1 MB, and it reports the program's own wait
// status and rusage to troupe on a pipe.
//
//   troupe-exec REPORT_FD DATA_LIMIT_BYTES CGROUP MEMORY_MAX_SET PROGRAM [ARG...]
//
// CGROUP ("-": none) is the job cgroup the shim moves itself into before it
// starts the program, so that troupe never has to move itself (its threads
// would be charged to the job, and could be OOM-killed there). With
// MEMORY_MAX_SET 1 the cgroup's memory.max is the limit; otherwise, or if
// the move failed, DATA_LIMIT_BYTES > 0 becomes RLIMIT_DATA.
//
// Protocol on REPORT_FD (one line each, in order):
//   "G <errno>\n"          it could not enter CGROUP (the program runs outside)
//   "S <pid>\n"            the program started
//   "E <errno>\n"          it could not be started (then exit 127)
//   "X <wait status> <user µs> <system µs> <max rss KiB>\n"   it ended
// The shim survives SIGINT/SIGTERM/SIGHUP/SIGQUIT so that it can still
// report: from troupe (its parent) they go to the whole process group or
// cgroup and reach the program directly, so the shim drops them; from
// anyone else (`kill <pid>` of the pid in metadata.json) it passes them on
// to the program. It then ends the way the program ended: the same exit
// code, or the same signal. SIGKILL ends both; troupe then knows no rusage
// and keeps its sampled figures.
// No C++ runtime beyond libc: every byte here counts towards the stage.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

void report(int fd, const char* line) {
  size_t len = strlen(line);
  while (len > 0) {
    ssize_t n = write(fd, line, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    line += n;
    len -= static_cast<size_t>(n);
  }
}

volatile sig_atomic_t child = 0;
pid_t parent = 0;

void pass_on(int sig, siginfo_t* info, void*) {
  if (info != nullptr && info->si_pid == parent)
    return;  // troupe signals the whole tree; the program has it already
  if (child > 0)
    kill(child, sig);
}

long long micros(const timeval& tv) {
  return static_cast<long long>(tv.tv_sec) * 1000000LL + tv.tv_usec;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    static const char usage[] = "troupe-exec: started by troupe, not by hand\n";
    (void) !write(2, usage, sizeof usage - 1);
    return 127;
  }
  int fd = atoi(argv[1]);
  fcntl(fd, F_SETFD, FD_CLOEXEC);  // the program must not hold troupe's pipe
  long long limit = atoll(argv[2]);
  const char* cgroup = argv[3];
  bool memory_max_set = argv[4][0] == '1';
  char line[160];
  bool moved = false;
  if (strcmp(cgroup, "-") != 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cgroup.procs", cgroup);
    int cg = open(path, O_WRONLY | O_CLOEXEC);
    moved = cg >= 0 && write(cg, "0", 1) == 1;  // "0": the writing process
    if (!moved) {
      snprintf(line, sizeof line, "G %d\n", errno != 0 ? errno : EIO);
      report(fd, line);
    }
    if (cg >= 0)
      close(cg);
  }
  if (limit > 0 && !(moved && memory_max_set)) {
    // limits.memory without a memory controller: RLIMIT_DATA, set before the
    // program exists (inherited), so it never runs unlimited.
    rlimit lim{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
    setrlimit(RLIMIT_DATA, &lim);
  }
  const int stops[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  parent = getppid();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = pass_on;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : stops)
    sigaction(sig, &sa, nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, dflt;
  sigemptyset(&none);
  sigemptyset(&dflt);
  for (int sig : stops)
    sigaddset(&dflt, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &dflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  char** program = argv + 5;
  int rc = strchr(program[0], '/') != nullptr
             ? posix_spawn(&pid, program[0], nullptr, &attr, program, environ)
             : posix_spawnp(&pid, program[0], nullptr, &attr, program, environ);
  if (rc != 0) {
    snprintf(line, sizeof line, "E %d\n", rc);
    report(fd, line);
    return 127;
  }
  child = pid;
  snprintf(line, sizeof line, "S %d\n", static_cast<int>(pid));
  report(fd, line);
  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  snprintf(line, sizeof line, "X %d %lld %lld %ld\n", status, micros(ru.ru_utime),
           micros(ru.ru_stime), static_cast<long>(ru.ru_maxrss));
  report(fd, line);
  close(fd);
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // the program dumped its own core, if any
    for (int stop : stops)
      signal(stop, SIG_DFL);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, nullptr);
    kill(getpid(), sig);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
