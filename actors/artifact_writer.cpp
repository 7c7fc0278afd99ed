#include "actors/artifact_writer.hpp"

#include "adapters/artifacts/atomic_file.hpp"
#include "messages/json.hpp"

#include <caf/all.hpp>

#include <cstdio>

namespace troupe {

namespace {

struct writer_state {
  std::string run_dir;
  line_appender trace;
  bool trace_open = false;
  int32_t failures = 0;
  metadata_renderer renderer;
  static inline const char* name = "artifact_writer";
};

using self_ptr = artifact_writer_actor::stateful_pointer<writer_state>;

void report(self_ptr self, const caf::error& err) {
  if (!err)
    return;
  if (self->state.failures++ == 0)
    std::fprintf(stderr, "troupe: artifact write failed: %s\n",
                 self->system().render(err).c_str());
}

artifact_writer_actor::behavior_type artifact_writer(self_ptr self, std::string run_dir) {
  self->state.run_dir = std::move(run_dir);
  return {
    [=](metadata_atom, const run_record& rec) {
      report(self, write_atomically(self->state.run_dir + "/metadata.json",
                                    self->state.renderer.render(rec)));
    },
    [=](trace_atom, const snapshot& snap) {
      auto& st = self->state;
      if (!st.trace_open) {
        if (auto err = st.trace.open(st.run_dir + "/resource_trace.jsonl")) {
          report(self, err);
          return;
        }
        st.trace_open = true;
      }
      report(self, st.trace.append(trace_line(snap)));
    },
    [=](sync_atom) { return self->state.failures; },
  };
}

} // namespace

artifact_writer_actor spawn_artifact_writer(caf::actor_system& sys, std::string run_dir) {
  return sys.spawn<caf::detached>(artifact_writer, std::move(run_dir));
}

} // namespace troupe
