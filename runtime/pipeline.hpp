// Pipeline files (YAML): parsing and validation. Everything is checked before
// anything runs; each problem names the file, line, column and key.
// The format is documented in docs/pipelines.md.
#pragma once

#include "actors/retry_policy.hpp"
#include "messages/job_worker.hpp"
#include "messages/run.hpp"

#include <caf/expected.hpp>
#include <caf/timestamp.hpp>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace troupe {

/// `params:` one parameter of the pipeline (`--param NAME=VALUE`).
struct param_def {
  std::string name;
  std::optional<std::string> default_value;
  bool required = false;
  std::string description;
};

struct stage_def {
  std::string name;              // a matrix instance: `train[shard=1,model=small]`
  std::string base_name;         // the stage as written (`train`); = name without a matrix
  std::vector<std::pair<std::string, std::string>> matrix;  // this instance's values, in file order
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
  resource_request resources;    // `resources:` (cpus 1 when not given): what the node books
  std::string gpu_fallback = "fail";  // without the GPUs it asks for: fail | cpu | wait
  /// The stages this one waits for (all must succeed), resolved: without
  /// `depends_on` the stage before it (none for the first), so a list of
  /// stages keeps its running-order meaning; `depends_on: []` makes a root.
  std::vector<std::string> depends_on;

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
  std::string sha256;  // of the file's bytes, hex: recorded with each run (rerun checks it)
  std::vector<stage_def> stages;
  supervision_spec supervision;  // the run's retry budget
  bool resume = false;           // an interrupted run is resumed, not failed
  int32_t max_running = 0;       // the coordinator runs at most this many at once; 0: no limit
  bool artifacts_in_store = false;  // `artifacts: store`: no run folder; the store has it all
  int32_t max_parallel = 0;      // stages of one run at once; 0: the number of cores
  bool continue_on_failure = false;  // `on_failure: continue`: only a failed stage's dependents are skipped
  std::map<std::string, std::string> default_env;  // defaults.env, kept once (not per stage)
  std::vector<param_def> params;  // in file order
  std::vector<stage_def> probes;  // `probes:` state probes (run or shell), run before and after
  std::set<std::string> env_refs;  // every ${env.NAME} in the file: each must be set at run time
  std::set<std::string> api_env;   // `api_env:` the variables an API caller may set

  /// defaults.env overlaid by the stage's own env.
  std::map<std::string, std::string> environment(const stage_def& s) const {
    auto env = default_env;
    for (auto& [k, v] : s.env)
      env[k] = v;
    return env;
  }
};

/// The run's parameter values: `given` (--param NAME=VALUE, the API's
/// `params`) over the defaults. Errors (errc::bad_input), all at once: a
/// name the pipeline does not declare, a required one without a value, and
/// an `${env.NAME}` the file uses that `environment` does not have.
/// `cli` wording names the file and --param; `api` names the pipeline and
/// `params` (an API client never sees the server's paths).
enum class param_wording { cli, api };
caf::expected<std::map<std::string, std::string>>
resolve_params(const pipeline_def& p, const std::map<std::string, std::string>& given,
               const std::map<std::string, std::string>& environment,
               param_wording wording = param_wording::cli);

/// A probe's timeout when it sets none.
inline constexpr caf::timespan default_probe_timeout = std::chrono::seconds(30);

/// At most this many instances of one matrix stage.
inline constexpr size_t max_matrix_instances = 256;

/// The stages in waves: each wave's stages depend only on earlier waves'
/// (indexes into p.stages, in file order within a wave).
std::vector<std::vector<size_t>> stage_waves(const pipeline_def& p);

/// The timeout of a stage when neither it nor `defaults` sets one.
inline constexpr caf::timespan builtin_timeout = std::chrono::hours(1);

/// SHA-256 of `bytes`, lowercase hex.
std::string sha256_hex(const std::string& bytes);

/// Reads and validates `path`. Errors: errc::bad_input, whose context is
/// one line per problem ("canary.yaml:12:5: stages[1].tmeout: unknown key ...").
caf::expected<pipeline_def> load_pipeline(const std::string& path);

/// The same on text already read; `file` is used in messages and to resolve
/// relative paths (its folder).
caf::expected<pipeline_def> parse_pipeline(const std::string& text, const std::string& file);

} // namespace troupe
