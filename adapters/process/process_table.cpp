#include "adapters/process/process_table.hpp"

#include "adapters/process/cgroup_jobs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

namespace troupe {

long clock_ticks_per_second() {
  static const long v = ::sysconf(_SC_CLK_TCK);
  return v;
}

long page_size_bytes() {
  static const long v = ::sysconf(_SC_PAGESIZE);
  return v;
}

bool parse_stat_line(const std::string& line, proc_entry& out) {
  // "pid (comm) state ppid pgrp ..." -- comm may hold spaces and ')'.
  auto lp = line.find('(');
  auto rp = line.rfind(')');
  if (lp == std::string::npos || rp == std::string::npos || rp < lp)
    return false;
  out.pid = std::atoi(line.c_str());
  out.comm = line.substr(lp + 1, rp - lp - 1);
  // Fields after comm, 1-based from `state` (field 3 of stat(5)).
  const char* p = line.c_str() + rp + 1;
  unsigned long long utime = 0, stime = 0, start = 0;
  long long rss = 0;
  int ppid = 0, pgrp = 0;
  char state = 0;
  // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice threads itrealvalue starttime
  // vsize rss
  int n = std::sscanf(p,
                      " %c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu"
                      " %*d %*d %*d %*d %*d %*d %llu %*u %lld",
                      &state, &ppid, &pgrp, &utime, &stime, &start, &rss);
  if (n != 7)
    return false;
  out.state = state;
  out.ppid = ppid;
  out.pgrp = pgrp;
  out.cpu_ticks = utime + stime;
  out.start_ticks = start;
  out.rss_pages = rss;
  return true;
}

std::vector<proc_entry> scan_processes() {
  std::vector<proc_entry> result;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr)
    return result;
  char path[300];
  char buf[1024];
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    std::snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    auto n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0)
      continue;
    proc_entry entry;
    if (parse_stat_line(std::string(buf, static_cast<size_t>(n)), entry))
      result.push_back(std::move(entry));
  }
  ::closedir(dir);
  return result;
}

std::vector<const proc_entry*> tree_of(const std::vector<proc_entry>& table, int32_t pgid,
                                       const std::vector<int32_t>& also) {
  std::vector<const proc_entry*> result;
  if (pgid <= 0)
    return result;
  std::unordered_set<int32_t> seeds(also.begin(), also.end());
  std::unordered_map<int32_t, std::vector<const proc_entry*>> children;
  std::unordered_set<int32_t> in;
  for (const auto& p : table)
    children[p.ppid].push_back(&p);
  std::vector<const proc_entry*> todo;
  for (const auto& p : table)
    if (p.pgrp == pgid || p.pid == pgid || seeds.count(p.pid) > 0)
      todo.push_back(&p);
  while (!todo.empty()) {
    auto* p = todo.back();
    todo.pop_back();
    if (!in.insert(p->pid).second)
      continue;
    if (p->state != 'Z')
      result.push_back(p);
    if (auto it = children.find(p->pid); it != children.end())
      for (auto* c : it->second)
        todo.push_back(c);
  }
  std::sort(result.begin(), result.end(),
            [](auto* a, auto* b) { return a->pid < b->pid; });
  return result;
}

namespace {

std::vector<int32_t> cgroup_members(const std::string& cgroup) {
  return cgroup.empty() ? std::vector<int32_t>{} : cgroup_jobs::members(cgroup);
}

} // namespace

std::vector<int32_t> live_tree(int32_t pgid, const std::string& cgroup) {
  auto table = scan_processes();
  std::vector<int32_t> pids;
  for (auto* p : tree_of(table, pgid, cgroup_members(cgroup)))
    pids.push_back(p->pid);
  return pids;
}

int signal_tree(int32_t pgid, const std::string& cgroup, int sig) {
  if (pgid <= 0)
    return 0;
  // Scan first: after SIGKILL the tree may be gone before a second look.
  auto table = scan_processes();
  auto tree = tree_of(table, pgid, cgroup_members(cgroup));
  ::kill(-pgid, sig);
  for (auto* p : tree)
    if (p->pgrp != pgid)
      ::kill(p->pid, sig);
  if (!cgroup.empty())
    cgroup_jobs::signal_all(cgroup, sig);
  return static_cast<int>(tree.size());
}

} // namespace troupe
