#include "actors/run_supervisor.hpp"

#include "actors/running_order.hpp"
#include "messages/json.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <csignal>
#include <functional>
#include <map>
#include <set>
#include <optional>
#include <utility>

namespace troupe {

namespace {

// A stage whose attempt runs: what the node, the sampler and the memory
// limit need to know about it.
struct attempt_slot {
  caf::optional<job_key> key;  // the attempt the node runs for us (none for noop)
  std::string cgroup;          // its job cgroup, or ""
  bool oom_killed = false;     // troupe killed it for exceeding limits.memory
  int64_t oom_rss = 0;
};

struct supervisor_state {
  std::unique_ptr<running_order> order;
  run_plan plan;
  run_supervisor_deps deps;
  std::map<size_t, attempt_slot> running;  // stages whose attempt runs, several in a graph
  std::set<size_t> waiting;                // stages waiting for their retry
  std::map<std::string, size_t> index;     // stage name -> position
  bool started = false;
  bool finishing = false;
  caf::optional<job_key> probe;  // the state probe the node runs for us, if any
  bool probed_before = false;    // the run started: its "before" probes ran or run
  bool probed_after = false;     // the "after" probes have started
  bool checking_writer = false;  // a sync to the artifact_writer is out (samples)
  static inline const char* name = "run_supervisor";
};

using self_ptr = run_supervisor_actor::stateful_pointer<supervisor_state>;

// metadata.json, and the journal's rows and events to the store.
void persist(self_ptr self) {
  auto& st = self->state;
  self->send(st.deps.writer, metadata_atom_v, st.order->record());
  auto batch = st.order->take_journal();
  if (st.deps.store && !batch.empty())
    self->send(st.deps.store, persist_atom_v, std::move(batch));
}

void notify(self_ptr self, progress_event::kind_t kind, size_t i) {
  auto& st = self->state;
  if (!st.deps.listener)
    return;
  progress_event ev;
  ev.run_id = st.order->record().run_id;
  ev.kind = kind;
  ev.index = static_cast<int32_t>(i);
  ev.total = static_cast<int32_t>(st.order->record().stages.size());
  ev.stage = st.order->record().stages.at(i);
  ev.run = st.order->record().status;
  self->send(st.deps.listener, std::move(ev));
}

sample_request request_for(self_ptr self, size_t i, const char* phase, int32_t pgid,
                           std::string cgroup = {}) {
  const auto& rec = self->state.order->record();
  const auto& s = rec.stages.at(i);
  return sample_request{rec.run_id, s.name, phase, pgid, std::move(cgroup),
                        static_cast<int32_t>(s.attempts.size())};
}

void step(self_ptr self, bool wait = false);
void finish(self_ptr self);

// A `noop` stage: no process, nothing to sample; it succeeds when started.
bool is_noop(self_ptr self, size_t i) {
  return self->state.plan.jobs.at(i).strategy == "noop";
}

// A writer answered sync: if it failed to make something durable, the run
// can no longer be recorded truthfully. No stage starts after this (next()
// and launch() see it), the running one is stopped, and the run fails with
// `code` (it exits 4). True when healthy.
bool records_ok(self_ptr self, const write_health& h, failure_code code) {
  auto& st = self->state;
  if (h.failures == 0 || st.order->record_failed())
    return h.failures == 0;
  auto why = h.first_error.empty() ? std::to_string(h.failures) + " write(s) failed"
                                   : h.first_error;
  st.order->record_failed(code, why, caf::make_timestamp());
  persist(self);  // what can still be written is written (the store, or the folder)
  for (auto& [i, slot] : st.running)
    if (slot.key)
      self->send(st.deps.node, cancel_atom_v, *slot.key);  // their results end the run
  return false;
}

// Asks the artifact writer, then the store, whether everything so far is
// durable; a failure goes to records_ok; then `then` runs.
void check_writers(self_ptr self, std::function<void()> then) {
  // Both at once (the answers take an fsync each); `then` once both answered.
  auto store = self->state.deps.store;
  auto pending = std::make_shared<int>(store ? 2 : 1);
  auto answered = [=](const write_health& h, failure_code code) {
    records_ok(self, h, code);
    if (--*pending == 0)
      then();
  };
  auto ask = [=](auto request, failure_code code, const char* name) {
    request.then([=](write_health& h) { answered(h, code); },
                 [=](caf::error& err) {
                   answered(write_health{1, std::string(name) + ": " + to_string(err)}, code);
                 });
  };
  ask(self->request(self->state.deps.writer, caf::infinite, sync_atom_v),
      failure_code::artifact_write_failed, "artifact writer");
  if (store)
    ask(self->request(store, caf::infinite, sync_atom_v, self->state.order->record().run_id),
        failure_code::store_write_failed, "store");
}

// Before a stage starts. With `wait` (the first stage), `go` runs once both
// writers have confirmed the run's record so far: it is on disk and in the
// store before anything runs, or the run is marked failed and `go` finds it
// stopped and finishes it. Without, `go` runs at once and a failure that
// comes back stops the stage just started: the previous stage's metadata
// fsync stays off the critical path (about 1 ms a stage, docs/benchmarks.md).
void after_barrier(self_ptr self, std::function<void()> go, bool wait = true) {
  if (wait) {
    check_writers(self, std::move(go));
    return;
  }
  check_writers(self, [] {});
  go();
}

void report_finished(self_ptr self, int32_t failures) {
  auto& st = self->state;
  if (st.deps.listener) {
    progress_event ev;
    ev.run_id = st.order->record().run_id;
    ev.kind = progress_event::kind_t::run_finished;
    ev.index = -1;
    ev.total = static_cast<int32_t>(st.order->record().stages.size());
    ev.run = st.order->record().status;
    ev.stages = st.order->record().stages;
    ev.exit_code = failures > 0 && st.order->exit_code() == exit_code::ok
                     ? exit_code::internal
                     : st.order->exit_code();
    self->send(st.deps.listener, std::move(ev));
  }
  self->quit();
}

void run_probes(self_ptr self, const std::string& phase, size_t k, std::function<void()> then);

// The state probes of `phase` (pipeline `probes:`), one after the other; then
// `then`. Each runs like a stage (process group, timeout, logs under
// logs/probes/); what it printed is read back through the artifact writer
// (off this thread) and kept when it is one JSON object. A probe never fails
// the run.
void run_probes(self_ptr self, const std::string& phase, std::function<void()> then) {
  auto& st = self->state;
  if (st.plan.probes.empty() || st.order->record().run_dir.empty()) {
    then();
    return;
  }
  run_probes(self, phase, 0, std::move(then));
}

void run_probes(self_ptr self, const std::string& phase, size_t k, std::function<void()> then) {
  auto& st = self->state;
  // (Before: a cancel meanwhile starts no more of them.)
  if (k >= st.plan.probes.size() || (phase == "before" && st.order->stopping())) {
    st.probe = caf::none;
    then();
    return;
  }
  auto spec = st.plan.probes[k];
  auto name = spec.name.substr(spec.name.find('/') + 1);
  auto stem = "logs/probes/" + log_stem(name) + "." + phase;
  probe_record pr;
  pr.name = name;
  pr.phase = phase;
  pr.stdout_log = stem + ".stdout.log";
  pr.stderr_log = stem + ".stderr.log";
  const auto& dir = st.order->record().run_dir;
  spec.attempt = phase == "before" ? 1 : 2;
  spec.stdout_path = dir + "/" + pr.stdout_log;
  spec.stderr_path = dir + "/" + pr.stderr_log;
  spec.env.push_back("TROUPE_PROBE_PHASE=" + phase);
  st.probe = key_of(spec);
  auto next = [=](probe_record done) {
    self->state.order->probe_recorded(std::move(done), caf::make_timestamp());
    persist(self);
    run_probes(self, phase, k + 1, then);
  };
  auto ended = [=](job_result& r) mutable {
    pr.exit_code = r.exit_code;
    pr.duration = r.duration;
    if (r.status != stage_status::succeeded) {
      pr.status = "failed";
      pr.error = to_string(r.failure) + (r.error.empty() ? "" : ": " + r.error);
      next(pr);
      return;
    }
    self->request(self->state.deps.writer, caf::infinite, read_atom_v, pr.stdout_log,
                  int64_t{1} << 20)
      .then(
        [=](std::string& printed) mutable {
          std::string why;
          if (auto object = probe_object(printed, &why)) {
            pr.status = "ok";
            pr.output = std::move(*object);
          } else {
            pr.status = "invalid";
            pr.error = why;
          }
          next(pr);
        },
        [=](caf::error& err) mutable {
          pr.status = "invalid";
          pr.error = "its output could not be read: " + self->system().render(err);
          next(pr);
        });
  };
  self->request(st.deps.node, caf::infinite, start_atom_v, std::move(spec))
    .then(ended, [=](caf::error& err) mutable {
      job_result r;
      r.status = stage_status::failed;
      r.failure = failure_code::lost;
      r.error = "node failed: " + self->system().render(err);
      ended(r);
    });
}

void finish(self_ptr self) {
  auto& st = self->state;
  if (st.finishing)
    return;
  // The "after" probes first (also after a failure or a cancel), unless the
  // run can no longer be recorded or never started.
  if (!st.probed_after && st.probed_before && !st.order->record_failed()
      && !st.plan.probes.empty()) {
    st.probed_after = true;
    run_probes(self, "after", [=] { finish(self); });
    return;
  }
  if (st.probe)
    return;  // a probe runs: its end comes back here
  st.finishing = true;
  st.waiting.clear();
  st.order->finish(caf::make_timestamp());
  // The run's last word goes to metadata.json first, and only once that is
  // on disk to the store: killed in between, the store still says running,
  // its owner is found lost, and recovery takes the folder's word for how
  // the run ended (the other order left a folder saying running beside a
  // store saying failed, which recovery never looks at again).
  self->send(st.deps.writer, metadata_atom_v, st.order->record());
  auto batch = st.order->take_journal();
  self->request(st.deps.writer, caf::infinite, sync_atom_v).then([=](write_health& h) mutable {
    auto& st = self->state;
    auto failures = h.failures;
    if (failures > 0 && !st.order->record_failed()) {
      // The run's last word did not reach metadata.json: the run failed to
      // be recorded, whatever its stages did. The store (if it still works)
      // says so, and the folder is tried once more.
      auto why = h.first_error.empty() ? std::to_string(h.failures) + " write(s) failed"
                                       : h.first_error;
      std::fprintf(stderr, "troupe: artifact write failed: %s\n",
                   within_run(why, st.order->record().run_dir).c_str());
      // The ending not yet sent to the store is taken back: the run never
      // succeeded as far as its evidence goes.
      auto said = "run " + to_string(st.order->record().status);
      batch.runs.clear();
      batch.events.erase(std::remove_if(batch.events.begin(), batch.events.end(),
                                        [&](const event_row& e) {
                                          return e.job.empty() && e.message.rfind(said, 0) == 0;
                                        }),
                         batch.events.end());
      auto now = caf::make_timestamp();
      st.order->record_failed(failure_code::artifact_write_failed, why, now);
      st.order->finish(now);
      self->send(st.deps.writer, metadata_atom_v, st.order->record());
      batch.append(st.order->take_journal());
    }
    if (!st.deps.store) {
      report_finished(self, failures);
      return;
    }
    if (!batch.empty())
      self->send(st.deps.store, persist_atom_v, std::move(batch));
    self->request(st.deps.store, caf::infinite, sync_atom_v, st.order->record().run_id)
      .then([=](write_health& s) { report_finished(self, failures + s.failures); },
            [=](caf::error&) { report_finished(self, failures + 1); });
  });
}

job_result lost_result(self_ptr self, size_t i, std::string why) {
  job_result r;
  r.name = self->state.plan.jobs.at(i).name;
  r.status = stage_status::failed;
  r.failure = failure_code::lost;
  r.error = std::move(why);
  r.finished_at = caf::make_timestamp();
  return r;
}

// An attempt ended (result, lost worker): take the after-snapshot, record,
// then go on, retry later, or stop.
void attempt_done(self_ptr self, size_t i, job_result result) {
  auto& st = self->state;
  auto found = st.running.find(i);
  if (found == st.running.end())
    return;  // already handled (a down message after the reply, say)
  auto slot = std::move(found->second);
  st.running.erase(found);
  if (!is_noop(self, i))
    self->send(st.deps.node, unwatch_atom_v, request_for(self, i, "sample", 0));
  auto pid = st.order->record().stages.at(i).pid;
  // (A worker that ended without a result: its node killed its tree.)
  if (!result.log_error.empty()) {
    // The stage's logs are cut or not durable: whatever its exit code, the
    // stage failed, and the run stops (ready() hands out nothing more).
    auto why = within_run(result.log_error, st.order->record().run_dir);
    std::string ended = result.exit_code ? "the process exited with code "
                                             + std::to_string(*result.exit_code)
                      : result.signal    ? "the process was killed by signal "
                                             + std::to_string(*result.signal)
                                         : "the process " + to_string(result.status);
    result.status = stage_status::failed;
    result.failure = failure_code::artifact_write_failed;
    result.error = why + " (" + ended + ")";
    if (!st.order->record_failed()) {
      std::fprintf(stderr, "troupe: artifact write failed: %s\n", why.c_str());
      st.order->record_failed(failure_code::artifact_write_failed, why, caf::make_timestamp());
      for (auto& [j, other] : st.running)
        if (other.key)
          self->send(st.deps.node, cancel_atom_v, *other.key);
    }
  }
  if (slot.oom_killed && result.status != stage_status::succeeded
      && result.status != stage_status::cancelled) {
    result.status = stage_status::failed;
    result.failure = failure_code::oom;
    result.error = "killed by troupe: tree RSS " + std::to_string(slot.oom_rss >> 20)
                   + " MiB over limits.memory "
                   + std::to_string(st.order->record().stages.at(i).memory_limit >> 20)
                   + " MiB";
  }
  auto record_it = [=](caf::optional<snapshot> snap) {
    auto& st = self->state;
    if (snap) {
      self->send(st.deps.writer, trace_atom_v, *snap);
      st.order->stage_after(i, std::move(*snap));
    }
    auto decision = st.order->attempt_finished(i, result, caf::make_timestamp());
    persist(self);
    notify(self, progress_event::kind_t::stage_finished, i);
    if (decision.kind == attempt_decision::retry) {
      st.waiting.insert(i);
      auto attempt = static_cast<int32_t>(st.order->record().stages.at(i).attempts.size());
      self->delayed_send(self, decision.delay, retry_atom_v, static_cast<int32_t>(i), attempt);
    }
    step(self);
  };
  if (is_noop(self, i)) {
    record_it(caf::none);
    return;
  }
  auto after = request_for(self, i, "after", pid, std::move(slot.cgroup));
  self->request(st.deps.node, caf::infinite, snapshot_atom_v, std::move(after))
    .then([=](snapshot& snap) { record_it(std::move(snap)); },
          [=](caf::error&) { record_it(caf::none); });
}

void launch(self_ptr self, size_t i) {
  auto& st = self->state;
  auto status = st.order->record().stages.at(i).status;
  if (st.finishing || st.order->stopping()
      || (status != stage_status::pending && status != stage_status::retrying)) {
    // Stopped meanwhile (a failure, a cancel): it does not start, and the
    // run ends once nothing else is in flight.
    st.order->release(i);
    step(self);
    return;
  }
  const auto& a = st.order->attempt_started(i, caf::make_timestamp());
  st.running[i] = attempt_slot{};
  const auto& dir = st.order->record().run_dir;
  auto spec = st.plan.jobs.at(i);
  spec.attempt = a.attempt;
  spec.strategy = a.strategy;
  spec.stdout_path = dir + "/" + a.stdout_log;
  spec.stderr_path = dir + "/" + a.stderr_log;
  if (!a.body_log.empty())
    spec.body_path = dir + "/" + a.body_log;
  spec.env.push_back("TROUPE_ATTEMPT=" + std::to_string(a.attempt));
  // metadata.json is rewritten once the leader runs (with its pid), or with
  // the result if it could not be started: one write for both transitions.
  // The store hears of the start at once.
  if (st.deps.store) {
    auto batch = st.order->take_journal();
    self->send(st.deps.store, persist_atom_v, std::move(batch));
  }
  if (spec.strategy != "exec" && spec.strategy != "noop")
    persist(self);  // no spawn message may come (plain HTTP); a noop's end follows at once
  notify(self, progress_event::kind_t::stage_started, i);
  if (spec.strategy == "noop") {
    job_result r;
    r.name = spec.name;
    r.status = stage_status::succeeded;
    r.strategy = "noop";
    r.finished_at = caf::make_timestamp();
    r.duration = r.finished_at - *a.started_at;
    attempt_done(self, i, std::move(r));
    return;
  }
  st.running[i].key = key_of(spec);
  self->request(st.deps.node, caf::infinite, start_atom_v, std::move(spec))
    .then([=](job_result& r) { attempt_done(self, i, std::move(r)); },
          [=](caf::error& err) {
            attempt_done(self, i,
                         lost_result(self, i, "node failed: " + self->system().render(err)));
          });
}

// Stages handed out by ready() wait here for the writers' barrier (the
// first wave only) while their "before" snapshots are taken.
struct start_gate {
  bool open = false;
  std::vector<std::function<void()>> parked;
};

// Starts `stages`: each takes its "before" snapshot (a /proc pass, about a
// millisecond; none for noop), then launches. With `wait` (the first wave)
// they also wait for both writers to confirm the record so far: it is on
// disk and in the store before anything runs, or the run is marked failed
// and launch() finds it stopped. The snapshots are taken meanwhile (they
// used to come one after the other). Without `wait` the check runs beside
// them, and a failure that comes back stops the stages just started: the
// previous stage's metadata fsync stays off the critical path (about 1 ms a
// stage, docs/benchmarks.md).
void start_stages(self_ptr self, const std::vector<size_t>& stages, bool wait) {
  auto gate = std::make_shared<start_gate>();
  gate->open = !wait;
  check_writers(self, [gate, wait] {
    if (!wait)
      return;
    gate->open = true;
    for (auto& f : std::exchange(gate->parked, {}))
      f();
  });
  auto when_open = [gate](std::function<void()> f) {
    if (gate->open)
      f();
    else
      gate->parked.push_back(std::move(f));
  };
  for (auto i : stages) {
    auto go = [=](std::shared_ptr<caf::optional<snapshot>> snap) {
      auto& order = *self->state.order;
      // (Nothing more is written for a run that is stopping: launch() sees it.)
      if (snap && *snap && !order.stopping()) {
        self->send(self->state.deps.writer, trace_atom_v, **snap);
        order.stage_before(i, std::move(**snap));
      }
      launch(self, i);
    };
    if (is_noop(self, i)) {
      when_open([=] { go(nullptr); });
      continue;
    }
    self->request(self->state.deps.node, caf::infinite, snapshot_atom_v,
                  request_for(self, i, "before", 0))
      .then(
        [=](snapshot& s) {
          auto snap = std::make_shared<caf::optional<snapshot>>(std::move(s));
          when_open([=] { go(snap); });
        },
        [=](caf::error&) { when_open([=] { go(nullptr); }); });
  }
}

// The index of `stage` while it runs (the node's messages name it), if it does.
std::optional<size_t> running_stage(const supervisor_state& st, const std::string& stage) {
  auto named = st.index.find(stage);
  if (named == st.index.end() || st.running.count(named->second) == 0)
    return std::nullopt;
  return named->second;
}

// Starts what is ready; ends the run when nothing is ready or in flight.
void step(self_ptr self, bool wait) {
  auto& st = self->state;
  if (st.finishing)
    return;
  auto ready = st.order->ready(caf::make_timestamp());
  if (!ready.empty()) {
    start_stages(self, ready, wait);
    return;
  }
  if (st.order->in_flight() > 0)
    return;  // a running stage's end, or a retry, steps again
  if (wait)
    after_barrier(self, [=] { finish(self); }, true);
  else
    finish(self);
}

run_supervisor_actor::behavior_type run_supervisor(self_ptr self, run_plan plan,
                                                   run_supervisor_deps deps) {
  auto& st = self->state;
  // The record lives in running_order from here on; the plan keeps the jobs.
  st.order = std::make_unique<running_order>(std::move(plan.record), plan.retry,
                                             plan.supervision, plan.jitter);
  st.plan = std::move(plan);
  st.deps = std::move(deps);
  for (size_t i = 0; i < st.order->record().stages.size(); ++i)
    st.index.emplace(st.order->record().stages[i].name, i);
  return {
    [=](start_atom) {
      auto& st = self->state;
      if (st.started || st.finishing)
        return;  // (a cancel that came first has finished the run)
      st.started = true;
      // The node's capacity is the node's: it holds back a stage that does
      // not fit, and says so (waiting_atom).
      st.order->start(caf::make_timestamp());
      persist(self);
      st.probed_before = true;
      run_probes(self, "before", [=] { step(self, true); });
    },
    [=](cancel_atom) { self->send(self, cancel_atom_v, std::string{}); },
    [=](cancel_atom, const std::string& reason) {
      auto& st = self->state;
      st.order->cancel(caf::make_timestamp(), reason);  // stages waiting to retry end cancelled
      st.waiting.clear();
      if (!st.started) {
        finish(self);
        return;
      }
      if (st.probe) {
        // A probe runs: it is stopped; before the stages that ends the
        // "before" probes and the run (its "after" probes still run).
        self->send(st.deps.node, cancel_atom_v, *st.probe);
        return;
      }
      for (auto& [i, slot] : st.running)
        if (slot.key)
          self->send(st.deps.node, cancel_atom_v, *slot.key);  // their results end the run
      // Nothing running: the run ends now, or once the stages being
      // started find it stopped (launch()).
      if (st.running.empty())
        step(self);
    },
    [=](retry_atom, int32_t stage, int32_t attempt) {
      auto& st = self->state;
      auto i = static_cast<size_t>(stage);
      if (st.finishing || st.waiting.count(i) == 0
          || static_cast<int32_t>(st.order->record().stages.at(i).attempts.size()) != attempt)
        return;  // cancelled meanwhile, or stale
      st.waiting.erase(i);
      after_barrier(self, [=] { launch(self, i); }, false);
    },
    [=](sample_atom, snapshot& snap) {
      auto& st = self->state;
      auto named = st.index.find(snap.stage);
      if (named == st.index.end() || st.running.count(named->second) == 0)
        return;
      auto i = named->second;
      auto& slot = st.running[i];
      self->send(st.deps.writer, trace_atom_v, snap);
      if (!st.checking_writer) {
        // A trace line that cannot be written (a full disk) stops the run
        // while the stage runs, not after it.
        st.checking_writer = true;
        self->request(st.deps.writer, caf::infinite, sync_atom_v)
          .then(
            [=](write_health& h) {
              self->state.checking_writer = false;
              records_ok(self, h, failure_code::artifact_write_failed);
            },
            [=](caf::error&) { self->state.checking_writer = false; });
      }
      st.order->stage_sample(i, snap);
      const auto& s = st.order->record().stages.at(i);
      // limits.memory, enforced on the whole tree (the rlimit sees one process).
      if (s.memory_limit > 0 && snap.process && snap.process->rss_bytes > s.memory_limit
          && !slot.oom_killed && s.pid > 0) {
        slot.oom_killed = true;
        slot.oom_rss = snap.process->rss_bytes;
        // The node kills the attempt's tree: the same message reaches a
        // remote node.
        if (slot.key)
          self->send(st.deps.node, kill_atom_v, *slot.key,
                     "tree RSS " + std::to_string(slot.oom_rss >> 20) + " MiB over limits.memory");
      }
    },
    [=](limit_atom, const std::string& stage, const std::string& what) {
      if (auto i = running_stage(self->state, stage)) {
        self->state.order->stage_note(*i, what, caf::make_timestamp());
        persist(self);
      }
    },
    [=](waiting_atom, const std::string& stage, const std::string& why) {
      if (auto i = running_stage(self->state, stage)) {
        self->state.order->stage_waiting(*i, why, caf::make_timestamp());
        persist(self);
      }
    },
    [=](spawned_atom, const std::string& stage, int32_t pid, std::string& cgroup) {
      auto& st = self->state;
      auto found = running_stage(st, stage);
      if (!found)
        return;
      auto i = *found;
      st.order->stage_spawned(i, pid, cgroup, caf::make_timestamp());
      st.running[i].cgroup = cgroup;
      persist(self);
      if (st.plan.sample_interval.count() > 0) {
        self->send(st.deps.node, watch_atom_v, request_for(self, i, "sample", pid, cgroup),
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
