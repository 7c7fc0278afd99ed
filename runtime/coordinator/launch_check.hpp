// The one validator of what a launch asks for, whether a client sends it to
// POST /api/runs, a schedule stores it for its ticks, or a tick replays it:
// the optional stages it enables, the environment it sets, the parameters
// it gives. A schedule is checked with it when made, so that nothing a run
// would refuse is accepted and then skipped at every tick.
#pragma once

#include "runtime/coordinator.hpp"

#include <map>
#include <optional>
#include <set>
#include <string>

namespace troupe {

/// 400 bad_request: "<field>: <message>".
api_error bad_request(const std::string& field, const std::string& message);

/// A POSIX variable name: [A-Za-z_][A-Za-z0-9_]*, at most 256 characters.
bool env_name_ok(const std::string& name);

/// What `req` asks of pipeline `p`, checked: the stages it enables (each an
/// optional stage of `p`), its env (a name `p` lists in `api_env`, never
/// troupe's own nor a loader's or shell's variable) and its params (declared
/// by `p`, required ones given; `environment` has every ${env.NAME} of `p`).
/// On success, the enabled stages and the resolved parameters.
struct checked_launch {
  std::set<std::string> enabled;
  std::map<std::string, std::string> params;
};
api_result<checked_launch> check_launch(const pipeline_def& p, const launch_request& req,
                                        const std::map<std::string, std::string>& environment);

/// A schedule's stored launch options (its `options` JSON) as the request
/// each of its ticks makes.
launch_request launch_request_of(const schedule_row& s);

} // namespace troupe
