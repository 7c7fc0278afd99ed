#include "runtime/run_watch.hpp"

#include "adapters/store/store.hpp"
#include "messages/errors.hpp"

#include <caf/all.hpp>

namespace troupe {

run_outcome await_run(caf::scoped_actor& self, const run_supervisor_actor& sup,
                      const std::function<void(progress_event&)>& on_event,
                      const std::function<void()>& tick) {
  run_outcome out;
  self->monitor(sup);
  bool done = false;
  self->receive_while([&] { return !done; })(
    [&](progress_event& ev) {
      on_event(ev);
      if (ev.kind == progress_event::kind_t::run_finished) {
        out.finished = true;
        out.exit_code = ev.exit_code;
        done = true;
      }
    },
    [&](caf::down_msg& dm) {
      if (dm.source != sup.address())
        return;
      // The supervisor quits right after run_finished, which came first.
      if (!out.finished)
        out.died = dm.reason ? std::move(dm.reason)
                             : caf::make_error(errc::bad_state,
                                               "run_supervisor ended without finishing the run");
      done = true;
    },
    caf::after(std::chrono::milliseconds(250)) >> [&] { tick(); });
  self->demonitor(sup.address());
  return out;
}

caf::expected<recovery_report> record_lost_run(caf::scoped_actor& self, const lost_run& run,
                                               const std::string& why) {
  // Barriers: what the supervisor sent before it died is written first.
  auto barrier = [&](auto& writer) {
    if (!writer)
      return;
    self->request(writer, caf::infinite, sync_atom_v).receive([](write_health&) {},
                                                              [](caf::error&) {});
  };
  barrier(run.writer);
  barrier(run.store);
  recovery_report report;
  resumable_run failed;
  if (!run.store_url.empty()) {
    auto db = open_store(run.store_url);
    if (!db)
      return std::move(db.error());
    auto settled = fail_lost_run(**db, run.run_id, why);
    if (!settled)
      return settled;
    report = std::move(*settled);
  }
  if (!report.settled.empty()) {
    failed = report.settled.front();
  } else {
    failed.run.run_id = run.run_id;
    failed.run.status = run_status::failed;
    failed.run.failure = failure_code::lost;
    failed.run.reason = why;
    failed.run.finished_at = caf::make_timestamp();
  }
  failed.run.run_dir = run.run_dir;
  if (auto err = settle_metadata(failed))
    return err;
  return report;
}

} // namespace troupe
