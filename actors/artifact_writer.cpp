#include "actors/artifact_writer.hpp"

#include "adapters/artifacts/atomic_file.hpp"
#include "adapters/artifacts/io_pool.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <caf/all.hpp>

#include <cstdio>
#include <map>

namespace troupe {

namespace {

/// The public interface plus the pool's reports: a write's outcome ("" or
/// the error), and a barrier reached.
using writer_impl = artifact_writer_actor::extend<caf::reacts_to<written_atom, std::string>,
                                                  caf::reacts_to<synced_atom, uint64_t>,
                                                  caf::reacts_to<read_done_atom, uint64_t, std::string>>;

// The run folder's open files: touched only by pool tasks of its lane, one
// at a time.
struct folder {
  std::string run_dir;
  line_appender trace;
  bool trace_open = false;
  space_reserve reserve;  // given back to write a run's final record on a full disk
};

struct writer_state {
  std::shared_ptr<io_pool> pool;
  std::shared_ptr<folder> files;
  write_health health;
  metadata_renderer renderer;  // CPU work: done here, the write on the pool
  uint64_t next_sync = 0;
  std::map<uint64_t, caf::typed_response_promise<write_health>> syncs;
  std::map<uint64_t, caf::typed_response_promise<std::string>> reads;
  static inline const char* name = "artifact_writer";
};

using self_ptr = writer_impl::stateful_pointer<writer_state>;

// Runs `work` on the pool in the folder's lane; an error comes back as
// (written_atom, text).
void on_pool(self_ptr self, std::function<caf::error(folder&)> work) {
  auto& st = self->state;
  auto me = caf::actor_cast<writer_impl>(self);
  auto files = st.files;
  st.pool->post(files->run_dir, [me, files, work = std::move(work)] {
    // Only failures are reported: a sync behind it in the lane still comes
    // after them.
    if (auto err = work(*files))
      caf::anon_send(me, written_atom_v, describe(err));
  });
}

} // namespace

writer_impl::behavior_type artifact_writer(self_ptr self, std::shared_ptr<io_pool> pool,
                                           std::string run_dir) {
  auto& st = self->state;
  if (run_dir.empty()) {
    // A run with `artifacts: store` has no folder: everything is in the
    // store, and there is nothing to write here.
    return {
      [](metadata_atom, const run_record&) {},
      [](trace_atom, const snapshot&) {},
      [](written_atom, std::string&) {},
      [](sync_atom) { return write_health{}; },
      [](synced_atom, uint64_t) {},
      [](read_atom, const std::string&, int64_t) { return std::string{}; },
      [](read_done_atom, uint64_t, const std::string&) {},
    };
  }
  st.pool = std::move(pool);
  st.files = std::make_shared<folder>();
  st.files->run_dir = std::move(run_dir);
  // Without the reserve, a full disk could leave the run without its final
  // record: that counts as a failed write, so no stage starts.
  on_pool(self, [](folder& f) -> caf::error {
    if (auto err = f.reserve.hold(f.run_dir + "/.troupe-reserve", artifact_reserve_bytes))
      return caf::make_error(errc::os_error,
                             describe(err) + " (troupe keeps this free to record the run's end "
                                             "should the disk fill up)");
    return caf::none;
  });
  return {
    [=](metadata_atom, const run_record& rec) {
      auto text = std::make_shared<std::string>(self->state.renderer.render(rec));
      bool last = is_terminal(rec.status);
      // Two reports when the reserve was used: the failure, then the rewrite.
      auto me = caf::actor_cast<writer_impl>(self);
      auto files = self->state.files;
      self->state.pool->post(files->run_dir, [me, files, text, last] {
        auto path = files->run_dir + "/metadata.json";
        auto err = write_atomically(path, *text);
        if (err && last && files->reserve.release()) {
          // The disk is full and this is the run's last word: write it in the
          // space held back for it. The failure still counts (the run says so).
          caf::anon_send(me, written_atom_v, describe(err));
          err = write_atomically(path, *text);
        }
        if (last && !err)
          files->reserve.release();  // a finished run needs none
        if (err)
          caf::anon_send(me, written_atom_v, describe(err));
      });
    },
    [=](trace_atom, const snapshot& snap) {
      auto line = trace_line(snap);
      on_pool(self, [line = std::move(line)](folder& f) -> caf::error {
        if (!f.trace_open) {
          if (auto err = f.trace.open(f.run_dir + "/resource_trace.jsonl"))
            return err;
          f.trace_open = true;
        }
        return f.trace.append(line);
      });
    },
    [=](written_atom, std::string& error) {
      if (error.empty())
        return;
      auto& h = self->state.health;
      if (h.failures++ == 0) {
        h.first_error = std::move(error);
        std::fprintf(stderr, "troupe: artifact write failed: %s\n", h.first_error.c_str());
      }
    },
    [=](sync_atom) -> caf::result<write_health> {
      // A barrier in the folder's lane: it answers after every write posted
      // before it has reported (the pool reports in lane order).
      auto& st = self->state;
      auto id = st.next_sync++;
      auto rp = self->make_response_promise<write_health>();
      st.syncs.emplace(id, rp);
      auto me = caf::actor_cast<writer_impl>(self);
      st.pool->post(st.files->run_dir, [me, id] { caf::anon_send(me, synced_atom_v, id); });
      return rp;
    },
    [=](read_atom, const std::string& path, int64_t max) -> caf::result<std::string> {
      // Read on the pool, in the folder's lane (after every write before it).
      auto& st = self->state;
      auto id = st.next_sync++;
      auto rp = self->make_response_promise<std::string>();
      st.reads.emplace(id, rp);
      auto me = caf::actor_cast<writer_impl>(self);
      auto full = st.files->run_dir + "/" + path;
      st.pool->post(st.files->run_dir, [me, id, full, max] {
        std::string text;
        if (FILE* f = std::fopen(full.c_str(), "rbe")) {
          text.resize(static_cast<size_t>(max));
          text.resize(std::fread(text.data(), 1, text.size(), f));
          std::fclose(f);
        }
        caf::anon_send(me, read_done_atom_v, id, std::move(text));
      });
      return rp;
    },
    [=](read_done_atom, uint64_t id, std::string& text) {
      auto& reads = self->state.reads;
      auto it = reads.find(id);
      if (it == reads.end())
        return;
      it->second.deliver(std::move(text));
      reads.erase(it);
    },
    [=](synced_atom, uint64_t id) {
      auto& st = self->state;
      auto it = st.syncs.find(id);
      if (it == st.syncs.end())
        return;
      it->second.deliver(st.health);
      st.syncs.erase(it);
    },
  };
}

artifact_writer_actor spawn_artifact_writer(caf::actor_system& sys, std::shared_ptr<io_pool> pool,
                                            std::string run_dir) {
  return caf::actor_cast<artifact_writer_actor>(
    sys.spawn(artifact_writer, std::move(pool), std::move(run_dir)));
}

} // namespace troupe
