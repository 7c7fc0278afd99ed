#include "runtime/run_plan.hpp"

#include "runtime/template.hpp"

#include <algorithm>
#include <functional>
#include <optional>
#include <thread>

namespace troupe {

namespace {

using env_map = std::map<std::string, std::string>;

std::vector<std::string> stage_environment(env_map env, const env_map& stage,
                                           const env_map& extra) {
  for (auto& [k, v] : stage)
    env[k] = v;
  for (auto& [k, v] : extra)
    env[k] = v;
  std::vector<std::string> result;
  result.reserve(env.size());
  for (auto& [k, v] : env)
    result.push_back(k + "=" + v);
  return result;
}

using lookup_fn = std::function<std::optional<std::string>(const template_ref&)>;

// What ${...} stands for in the fields of `stage` (a stage or a probe).
lookup_fn lookup_for(const run_start& start, const std::string& run_id, const std::string& stage,
                     const std::vector<std::pair<std::string, std::string>>& matrix) {
  return [&start, run_id, stage, matrix](const template_ref& r) -> std::optional<std::string> {
    auto from = [&](const env_map& m) -> std::optional<std::string> {
      auto it = m.find(r.name);
      return it == m.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    if (r.space == "params")
      return from(start.params);
    if (r.space == "env")
      return from(start.environment);
    if (r.space == "run" && r.name == "id")
      return run_id;
    if (r.space == "run" && r.name == "dir")
      return start.run_dir;
    if (r.space == "stage" && r.name == "name")
      return stage;
    if (r.space == "matrix")
      for (auto& [k, v] : matrix)
        if (k == r.name)
          return v;
    return std::nullopt;
  };
}

// `written` with its templates filled in (run, shell, cwd made absolute, env,
// http), and its environment before troupe's own variables: defaults.env
// (filled in too) under the stage's env.
stage_def filled(const pipeline_def& p, const stage_def& written, const lookup_fn& lookup,
                 env_map& environment) {
  auto fill = [&](const std::string& text) { return expand_template(text, lookup); };
  stage_def s = written;
  for (auto& a : s.run)
    a = fill(a);
  s.shell = fill(s.shell);
  s.cwd = fill(s.cwd);
  if (!s.cwd.empty() && s.cwd[0] != '/')
    s.cwd = p.dir + "/" + s.cwd;
  for (auto& [k, v] : s.env)
    v = fill(v);
  s.http.url = fill(s.http.url);
  s.http.body = fill(s.http.body);
  for (auto& [k, v] : s.http.headers)
    v = fill(v);
  environment = p.default_env;
  for (auto& [k, v] : environment)
    v = fill(v);
  for (auto& [k, v] : s.env)
    environment[k] = v;
  return s;
}

std::string upper(std::string s) {
  for (auto& ch : s)
    if (ch >= 'a' && ch <= 'z')
      ch = static_cast<char>(ch - 'a' + 'A');
  return s;
}

} // namespace

run_plan make_run_plan(const pipeline_def& p, const run_start& start) {
  run_plan plan;
  auto& rec = plan.record;
  rec.run_id = start.run_id;
  rec.pipeline = p.name;
  rec.run_dir = start.run_dir;
  rec.started_at = start.started_at;
  rec.pid = start.pid;
  rec.owner = start.owner;
  rec.epoch = start.epoch;
  if (start.resumed)
    rec.status = run_status::running;
  rec.host = start.host;
  rec.options.pipeline_file = p.file;
  rec.options.output_dir = start.output_dir;
  rec.options.enabled.assign(start.enabled.begin(), start.enabled.end());
  rec.options.sample_interval = start.sample_interval;
  rec.options.grace = start.grace;
  rec.options.max_parallel = p.max_parallel > 0
                               ? p.max_parallel
                               : std::max(1, static_cast<int32_t>(std::thread::hardware_concurrency()));
  rec.options.continue_on_failure = p.continue_on_failure;
  rec.options.pipeline_sha256 = p.sha256;
  rec.options.launched_by = start.launched_by;
  plan.sample_interval = start.sample_interval;
  plan.supervision = p.supervision;
  rec.params = start.params;
  for (const auto& written : p.stages) {
    // The stage with its templates filled in.
    env_map stage_env;
    auto s = filled(p, written, lookup_for(start, rec.run_id, written.name, written.matrix),
                    stage_env);
    env_map extra{{"TROUPE_RUN_ID", rec.run_id},
                  {"TROUPE_RUN_DIR", start.run_dir},
                  {"TROUPE_STAGE", s.name},
                  {"TROUPE_PIPELINE_DIR", p.dir}};
    for (auto& [k, v] : s.matrix)
      extra["TROUPE_MATRIX_" + upper(k)] = v;

    plan.retry.emplace_back(s.retry);
    stage_record sr;
    sr.name = s.name;
    sr.kind = s.is_http ? "http" : s.is_noop ? "noop" : "exec";
    sr.strategy = s.strategy;
    sr.memory_limit = s.memory_limit;
    sr.command = s.command();
    sr.optional = s.optional;
    sr.depends_on = s.depends_on;
    sr.matrix.insert(s.matrix.begin(), s.matrix.end());
    sr.enabled = !s.optional || start.enabled.count(s.name) > 0;
    sr.timeout = s.timeout;
    sr.stdout_log = "logs/" + log_stem(s.name) + ".stdout.log";
    sr.stderr_log = "logs/" + log_stem(s.name) + ".stderr.log";
    rec.stages.push_back(sr);
    job_spec js;
    js.run_id = rec.run_id;
    js.name = s.name;
    js.argv = s.argv(p.dir);
    js.cwd = s.cwd;
    js.env = stage_environment(start.environment, stage_env, extra);
    js.timeout = s.timeout;
    js.grace = start.grace;
    js.stdout_path = start.run_dir + "/" + sr.stdout_log;
    js.stderr_path = start.run_dir + "/" + sr.stderr_log;
    js.strategy = s.strategy;
    js.http = s.http;
    js.memory_limit = s.memory_limit;
    js.resources = s.resources;
    js.gpu_fallback = s.gpu_fallback;
    plan.jobs.push_back(std::move(js));
  }
  // State probes: run like stages (their own process group, timeout and
  // logs), with the same templates; the supervisor sets each phase's logs.
  for (const auto& pr : p.probes) {
    env_map env;
    auto s = filled(p, pr, lookup_for(start, rec.run_id, pr.name, {}), env);
    job_spec js;
    js.run_id = rec.run_id;
    js.name = "probes/" + s.name;  // (no stage name has a '/')
    js.argv = s.argv(p.dir);
    js.cwd = s.cwd;
    js.env = stage_environment(start.environment, env,
                               {{"TROUPE_RUN_ID", rec.run_id},
                                {"TROUPE_RUN_DIR", start.run_dir},
                                {"TROUPE_PROBE", s.name},
                                {"TROUPE_PIPELINE_DIR", p.dir}});
    js.timeout = s.timeout;
    js.grace = start.grace;
    js.strategy = "exec";
    js.resources.cpus = 0;  // a probe never waits for a slot
    plan.probes.push_back(std::move(js));
  }
  return plan;
}

} // namespace troupe
