#include "actors/artifact_writer.hpp"

#include "adapters/artifacts/atomic_file.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <caf/all.hpp>

#include <cstdio>

namespace troupe {

namespace {

struct writer_state {
  std::string run_dir;
  line_appender trace;
  bool trace_open = false;
  write_health health;
  metadata_renderer renderer;
  space_reserve reserve;  // given back to write a run's final record on a full disk
  static inline const char* name = "artifact_writer";
};

using self_ptr = artifact_writer_actor::stateful_pointer<writer_state>;

void report(self_ptr self, const caf::error& err) {
  if (!err)
    return;
  auto& h = self->state.health;
  if (h.failures++ == 0) {
    h.first_error = describe(err);
    std::fprintf(stderr, "troupe: artifact write failed: %s\n", h.first_error.c_str());
  }
}

artifact_writer_actor::behavior_type artifact_writer(self_ptr self, std::string run_dir) {
  auto& st = self->state;
  st.run_dir = std::move(run_dir);
  // Without the reserve, a full disk could leave the run without its final
  // record: that counts as a failed write, so no stage starts.
  if (auto err = st.reserve.hold(st.run_dir + "/.troupe-reserve", artifact_reserve_bytes))
    report(self, caf::make_error(errc::os_error,
                                 describe(err) + " (troupe keeps this free to record the run's "
                                                 "end should the disk fill up)"));
  return {
    [=](metadata_atom, const run_record& rec) {
      auto& st = self->state;
      auto path = st.run_dir + "/metadata.json";
      auto text = st.renderer.render(rec);
      auto err = write_atomically(path, text);
      if (err && is_terminal(rec.status) && st.reserve.release()) {
        // The disk is full and this is the run's last word: write it in the
        // space held back for it. The failure still counts (the run says so).
        report(self, err);
        err = write_atomically(path, text);
      }
      report(self, err);
      if (is_terminal(rec.status) && !err)
        st.reserve.release();  // a finished run needs none
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
    [=](sync_atom) { return self->state.health; },
  };
}

} // namespace

artifact_writer_actor spawn_artifact_writer(caf::actor_system& sys, std::string run_dir) {
  return sys.spawn<caf::detached>(artifact_writer, std::move(run_dir));
}

} // namespace troupe
