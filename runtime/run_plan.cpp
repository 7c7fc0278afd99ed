#include "runtime/run_plan.hpp"

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
  plan.sample_interval = start.sample_interval;
  plan.supervision = p.supervision;
  for (auto& s : p.stages) {
    plan.retry.emplace_back(s.retry);
    stage_record sr;
    sr.name = s.name;
    sr.kind = s.is_http ? "http" : s.is_noop ? "noop" : "exec";
    sr.strategy = s.strategy;
    sr.memory_limit = s.memory_limit;
    sr.command = s.command();
    sr.optional = s.optional;
    sr.enabled = !s.optional || start.enabled.count(s.name) > 0;
    sr.timeout = s.timeout;
    sr.stdout_log = "logs/" + s.name + ".stdout.log";
    sr.stderr_log = "logs/" + s.name + ".stderr.log";
    rec.stages.push_back(sr);
    job_spec js;
    js.run_id = rec.run_id;
    js.name = s.name;
    js.argv = s.argv(p.dir);
    js.cwd = s.cwd;
    js.env = stage_environment(start.environment, p.environment(s),
                               {{"TROUPE_RUN_ID", rec.run_id},
                                {"TROUPE_RUN_DIR", start.run_dir},
                                {"TROUPE_STAGE", s.name},
                                {"TROUPE_PIPELINE_DIR", p.dir}});
    js.timeout = s.timeout;
    js.grace = start.grace;
    js.stdout_path = start.run_dir + "/" + sr.stdout_log;
    js.stderr_path = start.run_dir + "/" + sr.stderr_log;
    js.strategy = s.strategy;
    js.http = s.http;
    js.memory_limit = s.memory_limit;
    plan.jobs.push_back(std::move(js));
  }
  return plan;
}

} // namespace troupe
