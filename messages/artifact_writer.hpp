// artifact_writer: owns a run folder's metadata.json and resource_trace.jsonl.
// Runs detached (it fsyncs); messages are applied in arrival order.
#pragma once

#include "messages/resource_sampler.hpp"
#include "messages/run.hpp"
#include "messages/type_ids.hpp"

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>

namespace troupe {

/// interface artifact_writer {
///   (metadata_atom, run_record) -> void  // rewrite metadata.json atomically
///   (trace_atom, snapshot) -> void       // append one line, fsync
///   (sync_atom) -> int32_t               // barrier: replies after all earlier
///                                        // writes, with how many failed so far
/// }
using artifact_writer_actor = caf::typed_actor<
  caf::reacts_to<metadata_atom, run_record>,
  caf::reacts_to<trace_atom, snapshot>,
  caf::replies_to<sync_atom>::with<int32_t>>;

} // namespace troupe
