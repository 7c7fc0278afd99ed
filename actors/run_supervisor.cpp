#include "actors/run_supervisor.hpp"

#include "actors/job_worker.hpp"
#include "actors/running_order.hpp"
#include "adapters/process/process_table.hpp"

#include <caf/all.hpp>

#include <csignal>
#include <optional>
#include <utility>

namespace troupe {

namespace {

struct supervisor_state {
  std::unique_ptr<running_order> order;
  run_plan plan;
  run_supervisor_deps deps;
  std::optional<size_t> current;  // the stage being executed
  std::string cgroup;             // its job cgroup, or ""
  job_worker_actor worker;
  bool started = false;
  bool finishing = false;
  static inline const char* name = "run_supervisor";
};

using self_ptr = run_supervisor_actor::stateful_pointer<supervisor_state>;

void persist(self_ptr self) {
  self->send(self->state.deps.writer, metadata_atom_v, self->state.order->record());
}

void notify(self_ptr self, progress_event::kind_t kind, size_t i) {
  auto& st = self->state;
  if (!st.deps.listener)
    return;
  progress_event ev;
  ev.kind = kind;
  ev.index = static_cast<int32_t>(i);
  ev.total = static_cast<int32_t>(st.order->record().stages.size());
  ev.stage = st.order->record().stages.at(i);
  ev.run = st.order->record().status;
  caf::anon_send(st.deps.listener, std::move(ev));
}

sample_request request_for(self_ptr self, size_t i, const char* phase, int32_t pgid,
                           std::string cgroup = {}) {
  const auto& rec = self->state.order->record();
  return sample_request{rec.run_id, rec.stages.at(i).name, phase, pgid, std::move(cgroup)};
}

void step(self_ptr self);

void finish(self_ptr self) {
  auto& st = self->state;
  if (st.finishing)
    return;
  st.finishing = true;
  st.order->finish(caf::make_timestamp());
  persist(self);
  // Barrier: every metadata and trace write before this one is on disk.
  self->request(st.deps.writer, caf::infinite, sync_atom_v)
    .then([=](int32_t failures) {
      auto& st = self->state;
      if (st.deps.listener) {
        progress_event ev;
        ev.kind = progress_event::kind_t::run_finished;
        ev.index = -1;
        ev.total = static_cast<int32_t>(st.order->record().stages.size());
        ev.run = st.order->record().status;
        ev.stages = st.order->record().stages;
        ev.exit_code = failures > 0 && st.order->exit_code() == exit_code::ok
                         ? exit_code::internal
                         : st.order->exit_code();
        caf::anon_send(st.deps.listener, std::move(ev));
      }
      self->quit();
    });
}

// A stage ended (result, lost worker): take the after-snapshot, record, go on.
void stage_done(self_ptr self, size_t i, job_result result) {
  auto& st = self->state;
  if (st.current != i)
    return;  // already handled (a down message after the reply, say)
  st.current.reset();
  st.worker = nullptr;
  self->send(st.deps.sampler, unwatch_atom_v);
  auto pid = st.order->record().stages.at(i).pid;
  // A worker that ended without a result left its tree unattended: stop it,
  // so that no process of the stage outlives it here either.
  if (result.failure == failure_code::lost && pid > 0)
    signal_tree(pid, st.cgroup, SIGKILL);
  auto record_it = [=](caf::optional<snapshot> snap) {
    auto& st = self->state;
    if (snap) {
      self->send(st.deps.writer, trace_atom_v, *snap);
      st.order->stage_after(i, std::move(*snap));
    }
    st.order->stage_finished(i, result);
    persist(self);
    notify(self, progress_event::kind_t::stage_finished, i);
    step(self);
  };
  auto after = request_for(self, i, "after", pid, std::exchange(st.cgroup, {}));
  self->request(st.deps.sampler, caf::infinite, snapshot_atom_v, std::move(after))
    .then([=](snapshot& snap) { record_it(std::move(snap)); },
          [=](caf::error&) { record_it(caf::none); });
}

void launch(self_ptr self, size_t i) {
  auto& st = self->state;
  if (st.order->cancelled()) {
    finish(self);
    return;
  }
  st.order->stage_started(i, caf::make_timestamp());
  st.current = i;
  // metadata.json is rewritten once the leader runs (with its pid), or with
  // the result if it could not be started: one write for both transitions.
  notify(self, progress_event::kind_t::stage_started, i);
  auto listener = caf::actor_cast<job_listener_actor>(self);
  st.worker = spawn_job_worker(self->system(), st.deps.runner, listener);
  self->monitor(st.worker);
  self->request(st.worker, caf::infinite, start_atom_v, st.plan.jobs.at(i))
    .then([=](job_result& r) { stage_done(self, i, std::move(r)); },
          [=](caf::error& err) {
            job_result r;
            r.name = self->state.plan.jobs.at(i).name;
            r.status = stage_status::failed;
            r.failure = failure_code::lost;
            r.error = "job_worker failed: " + self->system().render(err);
            r.finished_at = caf::make_timestamp();
            stage_done(self, i, std::move(r));
          });
}

void step(self_ptr self) {
  auto& st = self->state;
  auto next = st.order->next();
  if (!next) {
    finish(self);
    return;
  }
  auto i = *next;
  self->request(st.deps.sampler, caf::infinite, snapshot_atom_v,
                request_for(self, i, "before", 0))
    .then(
      [=](snapshot& snap) {
        self->send(self->state.deps.writer, trace_atom_v, snap);
        self->state.order->stage_before(i, std::move(snap));
        launch(self, i);
      },
      [=](caf::error&) { launch(self, i); });
}

run_supervisor_actor::behavior_type run_supervisor(self_ptr self, run_plan plan,
                                                   run_supervisor_deps deps) {
  auto& st = self->state;
  // The record lives in running_order from here on; the plan keeps the jobs.
  st.order = std::make_unique<running_order>(std::move(plan.record));
  st.plan = std::move(plan);
  st.deps = std::move(deps);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (!st.current || dm.source != st.worker.address())
      return;
    auto i = *st.current;
    // Normal: the worker quits right after replying; the reply came first.
    job_result r;
    r.name = st.plan.jobs.at(i).name;
    r.status = stage_status::failed;
    r.failure = failure_code::lost;
    r.error = "job_worker ended without a result: " + to_string(dm.reason);
    r.finished_at = caf::make_timestamp();
    stage_done(self, i, std::move(r));
  });
  return {
    [=](start_atom) {
      auto& st = self->state;
      if (st.started)
        return;
      st.started = true;
      persist(self);
      step(self);
    },
    [=](cancel_atom) {
      auto& st = self->state;
      st.order->cancel();
      if (st.worker)
        self->send(st.worker, cancel_atom_v);
      else if (!st.started)
        finish(self);
      // else between stages: next() and launch() see the flag.
    },
    [=](sample_atom, snapshot& snap) {
      auto& st = self->state;
      if (!st.current || st.order->record().stages.at(*st.current).name != snap.stage)
        return;
      self->send(st.deps.writer, trace_atom_v, snap);
      st.order->stage_sample(*st.current, snap);
    },
    [=](spawned_atom, const std::string& stage, int32_t pid, std::string& cgroup) {
      auto& st = self->state;
      if (!st.current || st.order->record().stages.at(*st.current).name != stage)
        return;
      st.order->stage_spawned(*st.current, pid);
      st.cgroup = std::move(cgroup);
      persist(self);
      if (st.plan.sample_interval.count() > 0) {
        self->send(st.deps.sampler, watch_atom_v,
                   request_for(self, *st.current, "sample", pid, st.cgroup),
                   st.plan.sample_interval, caf::actor_cast<sample_sink_actor>(self));
      }
    },
  };
}

} // namespace

run_supervisor_actor spawn_run_supervisor(caf::actor_system& sys, run_plan plan,
                                          run_supervisor_deps deps) {
  return sys.spawn(run_supervisor, std::move(plan), std::move(deps));
}

} // namespace troupe
