#include "actors/scheduler.hpp"

#include "actors/artifact_writer.hpp"
#include "actors/run_queue.hpp"
#include "actors/run_supervisor.hpp"
#include "actors/running_order.hpp"

#include <caf/all.hpp>

namespace troupe {

namespace {

struct scheduler_state {
  scheduler_deps deps;
  run_queue queue;
  std::map<std::string, launch_plan> waiting;           // queued, by run id
  std::map<caf::actor_addr, std::string> supervisors;   // running, by supervisor
  std::map<std::string, run_record> records;            // running: what it started as
  static inline const char* name = "scheduler";
};

using self_ptr = scheduler_actor::stateful_pointer<scheduler_state>;

run_row row_of(const run_record& rec, run_status status) {
  auto r = run_row_of(rec, caf::make_timestamp());
  r.status = status;
  return r;
}

// One run_supervisor for `plan`, monitored; started (cancelled first when
// `cancelled`: it then ends the run at once, all stages skipped).
void supervise(self_ptr self, run_plan plan, bool cancelled = false,
               const std::string& reason = "") {
  auto& st = self->state;
  auto run_id = plan.record.run_id;
  st.records[run_id] = plan.record;
  run_supervisor_deps deps;
  deps.node = st.deps.node;
  deps.writer = spawn_artifact_writer(self->system(), st.deps.pool, plan.record.run_dir);
  deps.store = st.deps.store;
  deps.listener = caf::actor_cast<progress_listener_actor>(self);
  auto sup = spawn_run_supervisor(self->system(), std::move(plan), std::move(deps));
  st.supervisors[sup.address()] = run_id;
  self->monitor(sup);
  if (cancelled)
    self->send(sup, cancel_atom_v, reason);
  self->send(sup, start_atom_v);
}

// Cancels run `run_id` if it is queued or running here; `reason` (may be
// "") becomes the run's reason.
bool cancel_run(self_ptr self, const std::string& run_id, const std::string& reason) {
  auto& st = self->state;
  auto queued = st.waiting.find(run_id);
  if (queued != st.waiting.end()) {
    // Never started: its supervisor records it cancelled, stages skipped.
    st.queue.remove(run_id);
    auto plan = std::move(*queued->second.plan);
    st.waiting.erase(queued);
    supervise(self, std::move(plan), true, reason);
    return true;
  }
  for (auto& [addr, id] : st.supervisors) {
    if (id != run_id)
      continue;
    if (auto sup = caf::actor_cast<run_supervisor_actor>(addr))
      self->send(sup, cancel_atom_v, reason);
    return true;
  }
  return false;
}

// Starts every run the queue admits now.
void dispatch(self_ptr self) {
  auto& st = self->state;
  for (auto& q : st.queue.admit()) {
    auto it = st.waiting.find(q.run_id);
    if (it == st.waiting.end())
      continue;
    auto plan = std::move(*it->second.plan);
    st.waiting.erase(it);
    supervise(self, std::move(plan));
  }
}

// A run ended (or its supervisor died): its slot goes to the next.
void ended(self_ptr self, const std::string& run_id) {
  auto& st = self->state;
  st.queue.finished(run_id);
  st.records.erase(run_id);
  dispatch(self);
}

} // namespace

scheduler_actor::behavior_type scheduler(self_ptr self, scheduler_deps deps) {
  auto& st = self->state;
  st.deps = std::move(deps);
  st.queue = run_queue{st.deps.max_running};
  for (auto& [pipeline, limit] : st.deps.pipeline_limits)
    st.queue.set_pipeline_limit(pipeline, limit);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    auto it = st.supervisors.find(dm.source);
    if (it == st.supervisors.end())
      return;
    auto run_id = it->second;
    st.supervisors.erase(it);
    auto rec = st.records.find(run_id);
    if (rec != st.records.end() && st.deps.store && dm.reason) {
      // It died before reporting the end: the run fails as lost, taken over
      // at the next epoch so that nothing it still sends can overwrite that.
      auto row = row_of(rec->second, run_status::failed);
      row.failure = failure_code::lost;
      row.reason = "run_supervisor died: " + to_string(dm.reason);
      row.epoch += 1;
      row.finished_at = caf::make_timestamp();
      store_batch b;
      b.runs.push_back(row);
      self->send(st.deps.store, persist_atom_v, std::move(b));
    }
    ended(self, run_id);
  });
  return {
    [=](launch_atom, launch_plan& launch) -> std::string {
      auto& st = self->state;
      const auto& rec = launch.plan->record;
      auto id = rec.run_id;
      // Persisted queued first: the run exists from the moment it is launched
      // (a resumed run exists already, running: it stays so).
      if (st.deps.store && rec.status != run_status::running) {
        store_batch b;
        b.runs.push_back(row_of(rec, run_status::queued));
        self->send(st.deps.store, persist_atom_v, std::move(b));
      }
      st.queue.enqueue({id, rec.pipeline, launch.priority});
      st.waiting.emplace(id, std::move(launch));
      dispatch(self);  // in the same step: no polling interval
      return id;
    },
    [=](cancel_atom, const std::string& run_id) -> bool {
      return cancel_run(self, run_id, "");
    },
    [=](cancel_atom, const std::string& run_id, const std::string& reason) -> bool {
      return cancel_run(self, run_id, reason);
    },
    [=](limit_atom, const std::string& pipeline, int32_t max_running) {
      self->state.queue.set_pipeline_limit(pipeline, max_running);
      dispatch(self);  // a limit raised or removed may admit queued runs
    },
    [=](stats_atom) -> caf::result<int32_t, int32_t> {
      auto& st = self->state;
      return {static_cast<int32_t>(st.queue.queued()), static_cast<int32_t>(st.supervisors.size())};
    },
    [=](progress_event& ev) {
      auto& st = self->state;
      bool finished = ev.kind == progress_event::kind_t::run_finished;
      auto run_id = ev.run_id;
      if (st.deps.listener)
        self->send(st.deps.listener, std::move(ev));
      if (finished) {
        for (auto it = st.supervisors.begin(); it != st.supervisors.end(); ++it) {
          if (it->second == run_id) {
            self->demonitor(it->first);
            st.supervisors.erase(it);
            break;
          }
        }
        ended(self, run_id);
      }
    },
  };
}

scheduler_actor spawn_scheduler(caf::actor_system& sys, scheduler_deps deps) {
  return sys.spawn(scheduler, std::move(deps));
}

} // namespace troupe
