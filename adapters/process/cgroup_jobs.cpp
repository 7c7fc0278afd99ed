#include "adapters/process/cgroup_jobs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace troupe {

namespace {

bool write_text(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

bool move_self(const std::string& cgroup) {
  return write_text(cgroup + "/cgroup.procs", std::to_string(::getpid()));
}

// The cgroup2 mount point and this process's path in it ("0::/path").
bool find_own_cgroup(std::string& home, std::string& why) {
  std::string mount;
  std::ifstream mi("/proc/self/mountinfo");
  for (std::string line; std::getline(mi, line);) {
    // ... mount-point ... - cgroup2 ...
    auto dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos)
      continue;
    std::istringstream in(line.substr(0, dash));
    std::string id, parent, devno, root, point;
    in >> id >> parent >> devno >> root >> point;
    mount = point;
    break;
  }
  if (mount.empty()) {
    why = "no cgroup2 hierarchy mounted";
    return false;
  }
  std::ifstream cg("/proc/self/cgroup");
  for (std::string line; std::getline(cg, line);) {
    if (line.rfind("0::", 0) == 0) {
      auto path = line.substr(3);
      home = mount + (path == "/" ? "" : path);
      return true;
    }
  }
  why = "this process has no cgroup2 path in /proc/self/cgroup";
  return false;
}

bool alive(int pid) {
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

// Removes troupe-<pid> folders (and their empty job cgroups) of dead troupes.
void sweep_stale(const std::string& home) {
  DIR* d = ::opendir(home.c_str());
  if (d == nullptr)
    return;
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, "troupe-", 7) != 0)
      continue;
    int pid = std::atoi(e->d_name + 7);
    if (pid <= 0 || alive(pid))
      continue;
    std::string dir = home + "/" + e->d_name;
    if (DIR* jd = ::opendir(dir.c_str())) {
      while (dirent* j = ::readdir(jd))
        if (std::strncmp(j->d_name, "job-", 4) == 0 || std::strcmp(j->d_name, "probe") == 0)
          ::rmdir((dir + "/" + j->d_name).c_str());  // fails, harmlessly, if populated
      ::closedir(jd);
    }
    ::rmdir(dir.c_str());
  }
  ::closedir(d);
}

} // namespace

cgroup_jobs::cgroup_jobs(std::string home, std::string base)
  : home_(std::move(home)), base_(std::move(base)) {
}

std::unique_ptr<cgroup_jobs> cgroup_jobs::open(std::string& why) {
  std::string home;
  const char* root = std::getenv("TROUPE_CGROUP_ROOT");
  if (root != nullptr && std::string(root) == "off") {
    why = "disabled by TROUPE_CGROUP_ROOT=off";
    return nullptr;
  }
  std::string original;
  if (!find_own_cgroup(original, why))
    return nullptr;
  home = root != nullptr && *root != '\0' ? root : original;
  sweep_stale(home);
  std::string base = home + "/troupe-" + std::to_string(::getpid());
  if (::mkdir(base.c_str(), 0755) != 0 && errno != EEXIST) {
    why = "cannot create " + base + ": " + std::strerror(errno);
    return nullptr;
  }
  // Probe: can we move into a child cgroup and back?
  std::string probe = base + "/probe";
  ::mkdir(probe.c_str(), 0755);
  bool in = move_self(probe);
  bool back = move_self(original);
  ::rmdir(probe.c_str());
  if (!in || !back) {
    why = "cannot move processes between cgroups under " + home;
    if (in && !back)
      why += " (and could not move back)";
    ::rmdir(base.c_str());
    return nullptr;
  }
  // Delegate the memory controller to the job cgroups where the hierarchy
  // offers it (memory.max, memory.events); without it, limits.memory falls
  // back to an rlimit and the sampled RSS.
  write_text(base + "/cgroup.subtree_control", "+memory");
  return std::unique_ptr<cgroup_jobs>(new cgroup_jobs(original, base));
}

cgroup_jobs::~cgroup_jobs() {
  if (DIR* d = ::opendir(base_.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strncmp(e->d_name, "job-", 4) == 0)
        ::rmdir((base_ + "/" + e->d_name).c_str());
    ::closedir(d);
  }
  ::rmdir(base_.c_str());
}

std::string cgroup_jobs::create(int64_t memory_max, bool* memory_limited) {
  std::string job = base_ + "/job-" + std::to_string(next_++);
  if (memory_limited != nullptr)
    *memory_limited = false;
  if (::mkdir(job.c_str(), 0755) != 0)
    return "";
  if (memory_max > 0 && memory_limited != nullptr)
    *memory_limited = write_text(job + "/memory.max", std::to_string(memory_max));
  return job;
}

std::string cgroup_jobs::spawn_inside(const std::function<void()>& spawn, int64_t memory_max,
                                      bool* memory_limited) {
  std::string job = base_ + "/job-" + std::to_string(next_++);
  bool made = ::mkdir(job.c_str(), 0755) == 0;
  bool limited = made && memory_max > 0
                 && write_text(job + "/memory.max", std::to_string(memory_max));
  if (memory_limited != nullptr)
    *memory_limited = limited;
  if (!made || !move_self(job)) {
    if (memory_limited != nullptr)
      *memory_limited = false;
    ::rmdir(job.c_str());
    spawn();
    return "";
  }
  spawn();
  move_self(home_);
  return job;
}

cgroup_jobs::memory_events cgroup_jobs::parse_memory_events(const std::string& text) {
  memory_events ev;
  std::istringstream in(text);
  std::string key;
  for (int64_t value = 0; in >> key >> value;) {
    if (key == "max")
      ev.max = value;
    else if (key == "oom")
      ev.oom = value;
    else if (key == "oom_kill")
      ev.oom_kill = value;
  }
  return ev;
}

std::optional<cgroup_jobs::memory_events> cgroup_jobs::read_memory_events(const std::string& job) {
  std::ifstream in(job + "/memory.events");
  if (!in)
    return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_memory_events(ss.str());
}

std::optional<int64_t> cgroup_jobs::read_memory_peak(const std::string& job) {
  std::ifstream in(job + "/memory.peak");
  int64_t bytes = 0;
  if (!(in >> bytes) || bytes <= 0)
    return std::nullopt;
  return bytes;
}

bool cgroup_jobs::remove(const std::string& job) {
  return ::rmdir(job.c_str()) == 0;
}

bool cgroup_jobs::remove_when_empty(const std::string& job) {
  for (int i = 0; i < 20; ++i) {
    if (::rmdir(job.c_str()) == 0 || errno == ENOENT)
      return true;
    ::usleep(10 * 1000);
  }
  return false;
}

std::vector<int32_t> cgroup_jobs::members(const std::string& job) {
  std::vector<int32_t> pids;
  std::ifstream in(job + "/cgroup.procs");
  for (int32_t pid; in >> pid;)
    pids.push_back(pid);
  return pids;
}

void cgroup_jobs::signal_all(const std::string& job, int sig) {
  if (sig == SIGKILL && write_text(job + "/cgroup.kill", "1"))
    return;
  for (auto pid : members(job))
    ::kill(pid, sig);
}

} // namespace troupe
