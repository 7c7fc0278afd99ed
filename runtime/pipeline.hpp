// Pipeline files (YAML): parsing and validation. Everything is checked before
// anything runs; each problem names the file, line, column and key.
// The format is documented in docs/pipelines.md.
#pragma once

#include "actors/retry_policy.hpp"
#include "messages/job_worker.hpp"

#include <caf/expected.hpp>
#include <caf/timestamp.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct stage_def {
  std::string name;
  std::string description;
  std::vector<std::string> run;  // argv form, or empty
  std::string shell;             // shell form, or empty
  bool optional = false;
  caf::timespan timeout{0};      // resolved: stage, else defaults, else built-in
  std::string cwd;               // absolute, resolved against the pipeline's folder
  std::map<std::string, std::string> env;  // the stage's own; see pipeline_def::environment
  int line = 0;                  // 1-based, where the stage starts
  bool is_http = false;          // an `http:` stage (else run, shell or noop)
  bool is_noop = false;          // `noop: true`: completes at once, no process (benchmarks, tests)
  http_request http;             // for http stages
  std::string strategy = "exec"; // exec; for http stages auto (default) | http | browser
  retry_spec retry;              // defaults.retry overlaid by the stage's
  int64_t memory_limit = 0;      // limits.memory in bytes; 0: none

  /// The argv troupe executes: `run` (a relative program path with a '/' made
  /// absolute against the pipeline's folder), or /bin/sh -c `shell`.
  std::vector<std::string> argv(const std::string& pipeline_dir) const;
  /// For people: the argv joined, or the shell line.
  std::string command() const;
};

struct pipeline_def {
  std::string name;
  std::string description;
  std::string file;  // absolute
  std::string dir;   // absolute folder of `file`
  std::vector<stage_def> stages;
  supervision_spec supervision;  // the run's retry budget
  bool resume = false;           // an interrupted run is resumed, not failed
  int32_t max_running = 0;       // the coordinator runs at most this many at once; 0: no limit
  bool artifacts_in_store = false;  // `artifacts: store`: no run folder; the store has it all
  std::map<std::string, std::string> default_env;  // defaults.env, kept once (not per stage)

  /// defaults.env overlaid by the stage's own env.
  std::map<std::string, std::string> environment(const stage_def& s) const {
    auto env = default_env;
    for (auto& [k, v] : s.env)
      env[k] = v;
    return env;
  }
};

/// The timeout of a stage when neither it nor `defaults` sets one.
inline constexpr caf::timespan builtin_timeout = std::chrono::hours(1);

/// Reads and validates `path`. Errors: errc::bad_input, whose context is
/// one line per problem ("canary.yaml:12:5: stages[1].tmeout: unknown key ...").
caf::expected<pipeline_def> load_pipeline(const std::string& path);

/// The same on text already read; `file` is used in messages and to resolve
/// relative paths (its folder).
caf::expected<pipeline_def> parse_pipeline(const std::string& text, const std::string& file);

} // namespace troupe
