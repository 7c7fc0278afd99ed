// troupe logs RUN [STAGE] [--stream stdout|stderr] [--attempt N] [--follow]
// [--tail N]: a stage's log, or every stage's in order under a header each
// (as `gh run view --log`), from a local store's run folder or through a
// coordinator's API, by the same code: a log_source gives the run's stages
// and a log's bytes from an offset; the printing and following are one.
#pragma once

#include "runtime/store_commands.hpp"

namespace troupe {

/// Through the API when a server is configured (--server, $TROUPE_SERVER,
/// the config file), else the store `o` names (-o, --db).
int logs_command(const store_command_options& o, bool through_api);

} // namespace troupe
