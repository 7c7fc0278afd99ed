// artifact_writer: writes a run folder's metadata.json (atomically) and
// resource_trace.jsonl (a line at a time, fsynced). Event-based: it renders
// on the scheduler and hands the writes and fsyncs to an io_pool shared by
// every run of the process (a lane per run folder keeps them in order), so
// that many runs do not need a thread each.
#pragma once

#include "messages/artifact_writer.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <string>

namespace troupe {

class io_pool;

/// Errors while writing are printed to stderr once (the first) and counted;
/// (sync_atom) answers after every earlier write with the count.
artifact_writer_actor spawn_artifact_writer(caf::actor_system& sys, std::shared_ptr<io_pool> pool,
                                            std::string run_dir);

} // namespace troupe
