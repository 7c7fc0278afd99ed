// artifact_writer: owns a run folder's metadata.json and resource_trace.jsonl.
// Runs detached (it fsyncs); messages are applied in arrival order.
#pragma once

#include "messages/resource_sampler.hpp"
#include "messages/run.hpp"
#include "messages/store.hpp"
#include "messages/type_ids.hpp"

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>

namespace troupe {

/// Space an artifact_writer holds back in its run folder while the run is
/// unfinished (`.troupe-reserve`), so that on a full disk the run's final
/// metadata.json (and a store in the same filesystem) can still be written.
inline constexpr int64_t artifact_reserve_bytes = 1 << 20;

/// interface artifact_writer {
///   (metadata_atom, run_record) -> void  // rewrite metadata.json atomically
///   (trace_atom, snapshot) -> void       // append one line, fsync
///   (sync_atom) -> write_health          // barrier: replies after all earlier
///                                        // writes, with how many failed so far
///   (read_atom, std::string path, int64_t max) -> std::string
///                                        // a file of the run folder (relative
///                                        // path), its first `max` bytes; "" if none
/// }
using artifact_writer_actor = caf::typed_actor<
  caf::reacts_to<metadata_atom, run_record>,
  caf::reacts_to<trace_atom, snapshot>,
  caf::replies_to<sync_atom>::with<write_health>,
  caf::replies_to<read_atom, std::string, int64_t>::with<std::string>>;

} // namespace troupe
