#include "actors/node.hpp"

#include "actors/http_worker.hpp"
#include "actors/job_worker.hpp"
#include "adapters/process/process_table.hpp"

#include <caf/all.hpp>

#include <csignal>
#include <deque>
#include <map>

namespace troupe {

namespace {

std::string mib(int64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

// An attempt the node has taken: waiting for room, or running.
struct node_job {
  job_key key;
  job_spec spec;                 // until it starts
  caf::actor_addr requester;
  job_listener_actor listener;   // the requester, hearing the leader start
  caf::typed_response_promise<job_result> promise;  // answered once, with the result
  job_worker_actor worker;       // once running
  int32_t pid = 0;               // once the leader runs
  std::string cgroup;
};

struct node_state {
  node_services services;
  std::map<job_key, node_job> jobs;            // waiting and running
  std::deque<job_key> waiting;                 // in arrival order
  std::map<caf::actor_addr, job_key> workers;  // running, by worker
  std::map<caf::actor_addr, int32_t> requesters;  // monitored, with their live jobs
  int32_t used_slots = 0;
  int64_t used_memory = 0;
  static inline const char* name = "node";
};

using self_ptr = node_actor::stateful_pointer<node_state>;

bool fits(const node_state& st, const resource_request& r) {
  return capacity_shortfall(r, st.used_slots, st.used_memory, st.services.slots,
                            st.services.memory_bytes)
    .empty();
}

void admit(self_ptr self);

// The attempt's result goes to its requester, once; its resources are
// free again and what waited for them may start.
void finish(self_ptr self, const job_key& key, job_result r) {
  auto& st = self->state;
  auto it = st.jobs.find(key);
  if (it == st.jobs.end())
    return;  // answered already
  auto& job = it->second;
  if (job.worker) {
    st.used_slots -= job.spec.resources.cpus;
    st.used_memory -= job.spec.resources.memory_bytes;
    st.workers.erase(job.worker.address());
    self->demonitor(job.worker.address());
  }
  auto rq = st.requesters.find(job.requester);
  if (rq != st.requesters.end() && --rq->second == 0) {
    self->demonitor(job.requester);
    st.requesters.erase(rq);
  }
  if (job.promise.pending())
    job.promise.deliver(std::move(r));
  st.jobs.erase(it);
  admit(self);
}

// A result for an attempt that never got a (working) worker.
job_result ended_without_worker(const node_job& job, stage_status status, failure_code code,
                                std::string error) {
  job_result r;
  r.name = job.key.stage;
  r.pid = job.pid;
  r.status = status;
  r.failure = code;
  r.error = std::move(error);
  r.started_at = r.finished_at = caf::make_timestamp();
  return r;
}

void run(self_ptr self, node_job& job) {
  auto& st = self->state;
  st.used_slots += job.spec.resources.cpus;
  st.used_memory += job.spec.resources.memory_bytes;
  auto me = caf::actor_cast<job_listener_actor>(self);
  auto& svc = st.services;
  job.worker = job.spec.strategy != "exec"
                 ? spawn_http_worker(self->system(),
                                     http_worker_deps{svc.runner, svc.http, svc.chromium, me})
               : svc.exec_worker ? svc.exec_worker(self->system(), me)
                                 : spawn_job_worker(self->system(), svc.runner, me);
  // A worker that dies without answering (killed, crashed) sends a down
  // message: CAF 0.17 has no broken-promise error for the request below.
  self->monitor(job.worker);
  st.workers[job.worker.address()] = job.key;
  auto key = job.key;
  self->request(job.worker, caf::infinite, start_atom_v, std::move(job.spec))
    .then([=](job_result& r) { finish(self, key, std::move(r)); },
          [=](caf::error& err) {
            auto& st = self->state;
            if (auto it = st.jobs.find(key); it != st.jobs.end()) {
              if (it->second.pid > 0)
                signal_tree(it->second.pid, it->second.cgroup, SIGKILL);
              finish(self, key,
                     ended_without_worker(it->second, stage_status::failed,
                                          failure_code::worker_lost,
                                          "job_worker ended without a result: "
                                            + self->system().render(err)));
            }
          });
}

// Starts, in arrival order, what fits now; an attempt that does not fit
// holds back those after it (no small job overtakes a large one forever).
void admit(self_ptr self) {
  auto& st = self->state;
  while (!st.waiting.empty()) {
    auto it = st.jobs.find(st.waiting.front());
    if (it == st.jobs.end()) {
      st.waiting.pop_front();
      continue;
    }
    if (!fits(st, it->second.spec.resources))
      return;
    st.waiting.pop_front();
    run(self, it->second);
  }
}

void worker_down(self_ptr self, const job_key& key, const caf::error& reason) {
  auto& st = self->state;
  auto it = st.jobs.find(key);
  if (it == st.jobs.end())
    return;
  // Its tree is nobody's now.
  if (it->second.pid > 0)
    signal_tree(it->second.pid, it->second.cgroup, SIGKILL);
  finish(self, key,
         ended_without_worker(it->second, stage_status::failed, failure_code::worker_lost,
                              "the attempt's job_worker died without a result ("
                                + (reason ? self->system().render(reason)
                                          : std::string("no reason given"))
                                + "); its processes were killed"));
}

} // namespace

std::string capacity_shortfall(const resource_request& want, int32_t used_slots,
                               int64_t used_memory, int32_t slots, int64_t memory) {
  if (slots > 0 && want.cpus > 0 && used_slots + want.cpus > slots)
    return std::to_string(used_slots) + " of " + std::to_string(slots)
           + " CPU slots in use, it needs " + std::to_string(want.cpus);
  if (memory > 0 && want.memory_bytes > 0 && used_memory + want.memory_bytes > memory)
    return mib(used_memory) + " of " + mib(memory) + " memory booked, it needs "
           + mib(want.memory_bytes);
  return {};
}

node_actor::behavior_type node(self_ptr self, node_services services) {
  self->state.services = std::move(services);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (auto w = st.workers.find(dm.source); w != st.workers.end()) {
      auto key = w->second;
      worker_down(self, key, dm.reason);
      return;
    }
    // A requester that dies (a crashed run_supervisor, later a lost
    // coordinator) leaves no attempt running, or waiting, for nobody.
    std::vector<job_key> gone;
    for (auto& [key, job] : st.jobs)
      if (job.requester == dm.source) {
        if (job.worker)
          self->send(job.worker, cancel_atom_v);
        else
          gone.push_back(key);
      }
    for (auto& key : gone)
      finish(self, key, job_result{});
  });
  return {
    [=](start_atom, job_spec& spec) -> caf::result<job_result> {
      auto& st = self->state;
      auto key = key_of(spec);
      if (st.jobs.count(key) != 0)
        return caf::make_error(caf::sec::invalid_argument,
                               "attempt " + key.run_id + "/" + key.stage + "#"
                                 + std::to_string(key.attempt) + " runs already");
      node_job job;
      job.key = key;
      job.requester = self->current_sender() ? self->current_sender()->address()
                                             : caf::actor_addr{};
      job.listener = caf::actor_cast<job_listener_actor>(self->current_sender());
      // What can never fit here is refused now rather than waiting forever.
      auto never = capacity_shortfall(spec.resources, 0, 0, st.services.slots,
                                      st.services.memory_bytes);
      job.spec = std::move(spec);
      if (!never.empty())
        return ended_without_worker(job, stage_status::failed, failure_code::spawn_failed,
                                    "the node cannot run it: " + never);
      job.promise = self->make_response_promise<job_result>();
      if (job.requester && st.requesters[job.requester]++ == 0)
        self->monitor(job.requester);
      auto& placed = st.jobs.emplace(key, std::move(job)).first->second;
      auto rp = placed.promise;
      if (st.waiting.empty() && fits(st, placed.spec.resources)) {
        run(self, placed);
      } else {
        st.waiting.push_back(key);
        auto why = capacity_shortfall(placed.spec.resources, st.used_slots, st.used_memory,
                                      st.services.slots, st.services.memory_bytes);
        if (why.empty())
          why = std::to_string(st.waiting.size() - 1) + " attempt(s) waiting before it";
        if (placed.listener)
          self->send(placed.listener, waiting_atom_v, key.stage,
                     "waiting for the node: " + why);
      }
      return rp;
    },
    [=](capacity_atom) { return self->state.services.slots; },
    [=](cancel_atom, const job_key& key) {
      auto& st = self->state;
      auto it = st.jobs.find(key);
      if (it == st.jobs.end())
        return;
      if (it->second.worker) {
        self->send(it->second.worker, cancel_atom_v);
        return;
      }
      // Still waiting for room: it ends here, never started.
      finish(self, key,
             ended_without_worker(it->second, stage_status::cancelled, failure_code::cancelled,
                                  "cancelled while waiting for the node"));
    },
    [=](kill_atom, const job_key& key, std::string& why) {
      auto& st = self->state;
      if (auto it = st.jobs.find(key); it != st.jobs.end() && it->second.worker)
        self->send(it->second.worker, kill_atom_v, std::move(why));
    },
    [=](spawned_atom, std::string& stage, int32_t pid, std::string& cgroup) {
      auto& st = self->state;
      auto sender = self->current_sender();
      if (!sender)
        return;
      auto w = st.workers.find(sender->address());
      if (w == st.workers.end())
        return;
      auto& job = st.jobs.at(w->second);
      job.pid = pid;
      job.cgroup = cgroup;
      if (job.listener)
        self->send(job.listener, spawned_atom_v, std::move(stage), pid, std::move(cgroup));
    },
  };
}

node_actor spawn_node(caf::actor_system& sys, node_services services) {
  return sys.spawn(node, std::move(services));
}

} // namespace troupe
