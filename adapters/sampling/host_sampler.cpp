#include "adapters/sampling/host_sampler.hpp"

#include "adapters/process/cgroup_jobs.hpp"
#include "adapters/process/process_table.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace troupe {

namespace {

// The first number of a one-line /proc file (uptime, loadavg); 0 if unreadable.
double read_first_number(const char* path) {
  double v = 0;
  if (FILE* f = std::fopen(path, "re")) {
    if (std::fscanf(f, "%lf", &v) != 1)
      v = 0;
    std::fclose(f);
  }
  return v;
}

double read_uptime() {
  return read_first_number("/proc/uptime");
}

} // namespace

void read_memory(host_figures& h) {
  FILE* f = std::fopen("/proc/meminfo", "re");
  if (f == nullptr)
    return;
  char key[64];
  long long kb = 0;
  long long total = 0, available = -1;
  while (std::fscanf(f, "%63s %lld kB\n", key, &kb) == 2) {
    if (std::strcmp(key, "MemTotal:") == 0)
      total = kb;
    else if (std::strcmp(key, "MemAvailable:") == 0)
      available = kb;
    if (total > 0 && available >= 0)
      break;
  }
  std::fclose(f);
  h.mem_total_bytes = total * 1024;
  h.mem_used_bytes = available >= 0 ? (total - available) * 1024 : 0;
}

host_sampler::host_sampler(std::shared_ptr<gpu_source> gpus)
  : gpus_(std::move(gpus)), last_cpu_(read_cpu_totals()), last_uptime_(read_uptime()) {
}

host_sampler::cpu_totals host_sampler::read_cpu_totals() {
  cpu_totals t;
  FILE* f = std::fopen("/proc/stat", "re");
  if (f == nullptr)
    return t;
  unsigned long long v[10] = {0};
  int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
                      &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7],
                      &v[8], &v[9]);
  std::fclose(f);
  if (n < 4)
    return t;
  // user nice system idle iowait irq softirq steal (guest is inside user)
  uint64_t idle = v[3] + (n > 4 ? v[4] : 0);
  uint64_t total = 0;
  for (int i = 0; i < std::min(n, 8); ++i)
    total += v[i];
  t.total = total;
  t.busy = total - idle;
  return t;
}

snapshot host_sampler::take(const sample_request& req) {
  return take_many({req}).at(0);
}

std::vector<snapshot> host_sampler::take_many(const std::vector<sample_request>& reqs) {
  snapshot s;
  s.ts = caf::make_timestamp();

  auto cpu = read_cpu_totals();
  if (cpu.total > last_cpu_.total)
    s.host.cpu_percent = 100.0 * static_cast<double>(cpu.busy - last_cpu_.busy)
                         / static_cast<double>(cpu.total - last_cpu_.total);
  last_cpu_ = cpu;
  read_memory(s.host);
  s.host.load1 = read_first_number("/proc/loadavg");

  const double hz = static_cast<double>(clock_ticks_per_second());
  const int64_t page = page_size_bytes();
  double uptime = read_uptime();
  double elapsed = uptime - last_uptime_;
  last_uptime_ = uptime;
  auto table = scan_processes();

  // Top 5 by RSS; CPU% since the previous snapshot, or over the process's
  // life when it is new.
  std::map<std::pair<int32_t, uint64_t>, uint64_t> ticks;
  for (const auto& p : table)
    ticks.emplace(std::make_pair(p.pid, p.start_ticks), p.cpu_ticks);
  std::vector<const proc_entry*> by_rss;
  for (const auto& p : table)
    if (p.state != 'Z')
      by_rss.push_back(&p);
  auto n_top = std::min<size_t>(5, by_rss.size());
  std::partial_sort(by_rss.begin(), by_rss.begin() + static_cast<long>(n_top),
                    by_rss.end(), [](auto* a, auto* b) {
                      return a->rss_pages != b->rss_pages ? a->rss_pages > b->rss_pages
                                                          : a->pid < b->pid;
                    });
  for (size_t i = 0; i < n_top; ++i) {
    const auto* p = by_rss[i];
    top_process t;
    t.pid = p->pid;
    t.name = p->comm;
    t.rss_bytes = p->rss_pages * page;
    auto key = std::make_pair(p->pid, p->start_ticks);
    auto prev = last_ticks_.find(key);
    if (prev != last_ticks_.end() && elapsed > 0) {
      t.cpu_percent = 100.0 * static_cast<double>(p->cpu_ticks - prev->second) / hz / elapsed;
    } else {
      double life = uptime - static_cast<double>(p->start_ticks) / hz;
      if (life > 0)
        t.cpu_percent = 100.0 * static_cast<double>(p->cpu_ticks) / hz / life;
    }
    s.top.push_back(std::move(t));
  }
  last_ticks_ = std::move(ticks);
  if (gpus_)
    s.gpus = gpus_->read();

  std::vector<snapshot> out;
  out.reserve(reqs.size());
  for (const auto& req : reqs) {
    auto one = s;
    one.run_id = req.run_id;
    one.stage = req.stage;
    one.phase = req.phase;
    if (req.pgid > 0) {
      tree_figures tree;
      uint64_t tree_ticks = 0;
      auto members = req.cgroup.empty() ? std::vector<int32_t>{}
                                        : cgroup_jobs::members(req.cgroup);
      for (auto* p : tree_of(table, req.pgid, members)) {
        tree.pids.push_back(p->pid);
        tree.rss_bytes += p->rss_pages * page;
        tree_ticks += p->cpu_ticks;
      }
      tree.cpu_seconds = static_cast<double>(tree_ticks) / hz;
      if (!s.gpus.empty()) {
        // Its processes on the GPUs, by NVML's per-process figures.
        tree.gpu_memory_bytes = 0;
        for (auto& g : s.gpus) {
          bool on = false;
          for (auto& gp : g.processes)
            if (std::binary_search(tree.pids.begin(), tree.pids.end(), gp.pid)) {
              on = true;
              tree.gpu_memory_bytes += std::max<int64_t>(0, gp.used_bytes);
            }
          if (on) {
            tree.gpus.push_back(g.uuid);
            tree.gpu_util_percent = std::max(tree.gpu_util_percent, g.util_percent);
          }
        }
      }
      one.process = std::move(tree);
    }
    out.push_back(std::move(one));
  }
  return out;
}

} // namespace troupe
