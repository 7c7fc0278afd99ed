#include "runtime/rerun.hpp"

#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <map>
#include <set>

namespace troupe {

caf::expected<rerun_choice> choose_rerun(const pipeline_def& p, const run_row& run,
                                         const std::vector<job_row>& jobs,
                                         const rerun_request& req) {
  auto bad = [](std::string text) { return caf::make_error(errc::bad_input, std::move(text)); };
  if (!is_terminal(run.status))
    return bad("run " + run.run_id + " is " + to_string(run.status)
               + "; only an ended run can be rerun");
  if (run.run_dir.empty())
    return bad("run " + run.run_id + " has no run folder (artifacts: store); it cannot be rerun");
  if (!run.pipeline_sha256.empty() && run.pipeline_sha256 != p.sha256 && !req.allow_changed)
    return bad(p.file + " has changed since run " + run.run_id + " (sha256 "
               + run.pipeline_sha256.substr(0, 12) + "... then, " + p.sha256.substr(0, 12)
               + "... now); rerun with --allow-changed to run its stages as the file says now");
  std::map<std::string, const job_row*> by_name;
  for (auto& j : jobs)
    by_name[j.job] = &j;
  // Who depends on whom, from the pipeline as it is now.
  std::map<std::string, std::vector<std::string>> dependents;
  for (auto& s : p.stages)
    for (auto& d : s.depends_on)
      dependents[d].push_back(s.name);
  std::set<std::string> chosen;
  std::string mode;
  if (!req.from.empty()) {
    mode = "--from " + req.from;
    for (auto& s : p.stages)
      if (s.name == req.from || s.base_name == req.from)
        chosen.insert(s.name);
    if (chosen.empty()) {
      std::string names;
      std::set<std::string> seen;
      for (auto& s : p.stages)
        if (seen.insert(s.base_name).second)
          names += (names.empty() ? "" : ", ") + s.base_name;
      return bad("--from " + req.from + ": " + p.file + " has no stage of that name (stages: "
                 + names + ")");
    }
  } else {
    mode = "--failed";
    for (auto& s : p.stages) {
      auto it = by_name.find(s.name);
      if (it == by_name.end())
        continue;
      auto st = it->second->status;
      bool not_enabled = st == stage_status::skipped
                         && it->second->error.rfind("optional stage not enabled", 0) == 0;
      if (st == stage_status::failed || st == stage_status::timed_out
          || st == stage_status::cancelled || (st == stage_status::skipped && !not_enabled))
        chosen.insert(s.name);
    }
    if (chosen.empty())
      return bad("run " + run.run_id + " has no failed, timed out, cancelled or skipped stage "
                 "to rerun (use --from STAGE to run succeeded ones again)");
  }
  // Everything that depends on a chosen stage, directly or not.
  std::vector<std::string> todo(chosen.begin(), chosen.end());
  while (!todo.empty()) {
    auto name = todo.back();
    todo.pop_back();
    for (auto& d : dependents[name])
      if (chosen.insert(d).second)
        todo.push_back(d);
  }
  rerun_choice out;
  for (auto& s : p.stages)
    if (chosen.count(s.name) > 0)
      out.stages.push_back(s.name);
  std::string list;
  for (auto& s : out.stages)
    list += (list.empty() ? "" : ", ") + s;
  out.event.run_id = run.run_id;
  out.event.level = event_level::info;  // asked for: news, not a warning
  out.event.message = "rerun (" + mode + ") by " + (req.by.empty() ? "?" : req.by) + ": " + list
                      + (req.reason.empty() ? "" : "; reason: " + req.reason);
  out.event.meta = meta()
                     .add("rerun", mode)
                     .add("by", req.by)
                     .add("reason", req.reason)
                     .add("stages", list)
                     .add("previous_status", to_string(run.status))
                     .add("pipeline_changed", run.pipeline_sha256 != p.sha256 ? "yes" : "no")
                     .str();
  return out;
}

} // namespace troupe
