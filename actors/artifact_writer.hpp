// artifact_writer: writes a run folder's metadata.json (atomically) and
// resource_trace.jsonl (a line at a time, fsynced). Detached: it fsyncs.
#pragma once

#include "messages/artifact_writer.hpp"

#include <caf/fwd.hpp>

#include <string>

namespace troupe {

/// Errors while writing are printed to stderr once per kind and counted;
/// (sync_atom) returns the count.
artifact_writer_actor spawn_artifact_writer(caf::actor_system& sys, std::string run_dir);

} // namespace troupe
