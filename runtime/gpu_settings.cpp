#include "runtime/gpu_settings.hpp"

#include "runtime/duration.hpp"

#include <cstdio>
#include <cstdlib>

namespace troupe {

std::optional<gpu_policy> gpu_policy_from_environment(gpu_policy p, std::string& error) {
  auto var = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0')
      return std::nullopt;
    return std::string(v);
  };
  if (auto v = var("TROUPE_GPU_SAFE_MODE")) {
    if (*v != "0" && *v != "1") {
      error = "$TROUPE_GPU_SAFE_MODE: '" + *v + "' is not 0 or 1";
      return std::nullopt;
    }
    p.safe_mode = *v == "1";
  }
  if (auto v = var("TROUPE_GPU_DEFAULT_TTL")) {
    auto d = *v == "0" ? std::optional<caf::timespan>{caf::timespan{0}} : parse_duration(*v);
    if (!d) {
      error = "$TROUPE_GPU_DEFAULT_TTL: '" + *v + "' is not a duration (e.g. 1h, 90s; 0: none)";
      return std::nullopt;
    }
    p.default_ttl = *d;
  }
  if (auto v = var("TROUPE_GPU_RESERVE")) {
    auto b = parse_size(*v);
    if (!b) {
      error = "$TROUPE_GPU_RESERVE: '" + *v + "' is not a size (e.g. 2Gi)";
      return std::nullopt;
    }
    p.reserve_bytes = *b;
  }
  if (auto v = var("TROUPE_GPU_MAX_LEASES_PER_HOLDER")) {
    char* end = nullptr;
    long n = std::strtol(v->c_str(), &end, 10);
    if (end == v->c_str() || *end != '\0' || n < 0 || n > 1000000) {
      error = "$TROUPE_GPU_MAX_LEASES_PER_HOLDER: '" + *v + "' is not a count (0: no limit)";
      return std::nullopt;
    }
    p.max_leases_per_holder = static_cast<int32_t>(n);
  }
  if (auto problem = policy_problem(p); !problem.empty()) {
    error = "GPU policy: " + problem;
    return std::nullopt;
  }
  return p;
}

std::string gpu_fit_problem(const pipeline_def& p, const std::vector<gpu_figures>& gpus) {
  if (gpus.empty())
    return {};
  const gpu_figures* largest = &gpus.front();
  for (auto& g : gpus)
    if (g.mem_total_bytes > largest->mem_total_bytes)
      largest = &g;
  auto gib = [](int64_t b) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1LL << 30));
    return std::string(buf);
  };
  std::string out;
  for (auto& s : p.stages) {
    auto at = p.file + ":" + std::to_string(s.line) + ": stage '" + s.name + "': ";
    if (s.resources.gpus > static_cast<int32_t>(gpus.size()))
      out += at + "resources.gpus: " + std::to_string(s.resources.gpus) + " asked; this host has "
             + std::to_string(gpus.size()) + "\n";
    if (s.resources.gpu_memory_bytes > largest->mem_total_bytes)
      out += at + "resources.gpu_memory: " + gib(s.resources.gpu_memory_bytes)
             + " is above every GPU's memory here (the largest, " + largest->uuid + ", has "
             + gib(largest->mem_total_bytes) + ")\n";
  }
  return out;
}

} // namespace troupe
