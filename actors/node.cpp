#include "actors/node.hpp"

#include "actors/http_worker.hpp"
#include "actors/job_worker.hpp"
#include "adapters/process/process_table.hpp"

#include <caf/all.hpp>

#include <csignal>
#include <map>

namespace troupe {

namespace {

struct running_job {
  job_key key;
  job_worker_actor worker;
  caf::actor_addr requester;
  job_listener_actor listener;  // the requester, hearing the leader start
  int32_t pid = 0;              // once the leader runs
  std::string cgroup;
};

struct node_state {
  node_services services;
  std::map<caf::actor_addr, running_job> jobs;  // by worker
  std::map<job_key, caf::actor_addr> by_key;
  std::map<caf::actor_addr, int32_t> requesters;  // monitored, with their live jobs
  static inline const char* name = "node";
};

using self_ptr = node_actor::stateful_pointer<node_state>;

running_job* find(node_state& st, const job_key& key) {
  auto it = st.by_key.find(key);
  if (it == st.by_key.end())
    return nullptr;
  auto j = st.jobs.find(it->second);
  return j == st.jobs.end() ? nullptr : &j->second;
}

void forget(self_ptr self, const caf::actor_addr& worker) {
  auto& st = self->state;
  auto it = st.jobs.find(worker);
  if (it == st.jobs.end())
    return;
  st.by_key.erase(it->second.key);
  auto r = st.requesters.find(it->second.requester);
  if (r != st.requesters.end() && --r->second == 0) {
    self->demonitor(it->second.requester);
    st.requesters.erase(r);
  }
  st.jobs.erase(it);
}

} // namespace

node_actor::behavior_type node(self_ptr self, node_services services) {
  self->state.services = std::move(services);
  // A requester that dies (a crashed run_supervisor, later a lost
  // coordinator) leaves no attempt running for nobody.
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto& [addr, job] : st.jobs)
      if (job.requester == dm.source)
        self->send(job.worker, cancel_atom_v);
  });
  return {
    [=](start_atom, job_spec& spec) -> caf::result<job_result> {
      auto& st = self->state;
      auto key = key_of(spec);
      if (find(st, key) != nullptr)
        return caf::make_error(caf::sec::invalid_argument,
                               "attempt " + key.run_id + "/" + key.stage + "#"
                                 + std::to_string(key.attempt) + " runs already");
      auto me = caf::actor_cast<job_listener_actor>(self);
      auto worker = spec.strategy == "exec"
                      ? spawn_job_worker(self->system(), st.services.runner, me)
                      : spawn_http_worker(self->system(),
                                          http_worker_deps{st.services.runner, st.services.http,
                                                           st.services.chromium, me});
      running_job job;
      job.key = key;
      job.worker = worker;
      job.requester = self->current_sender() ? self->current_sender()->address()
                                             : caf::actor_addr{};
      job.listener = caf::actor_cast<job_listener_actor>(self->current_sender());
      if (job.requester && st.requesters[job.requester]++ == 0)
        self->monitor(job.requester);
      auto waddr = worker.address();
      st.by_key[key] = waddr;
      st.jobs.emplace(waddr, std::move(job));
      auto rp = self->make_response_promise<job_result>();
      self->request(worker, caf::infinite, start_atom_v, std::move(spec))
        .then(
          [=](job_result& r) mutable {
            forget(self, waddr);
            rp.deliver(std::move(r));
          },
          [=](caf::error& err) mutable {
            // The worker ended without a result: its tree is nobody's now.
            auto& st = self->state;
            job_result r;
            if (auto it = st.jobs.find(waddr); it != st.jobs.end()) {
              r.name = it->second.key.stage;
              r.pid = it->second.pid;
              if (it->second.pid > 0)
                signal_tree(it->second.pid, it->second.cgroup, SIGKILL);
            }
            r.status = stage_status::failed;
            r.failure = failure_code::lost;
            r.error = "job_worker ended without a result: " + self->system().render(err);
            r.finished_at = caf::make_timestamp();
            forget(self, waddr);
            rp.deliver(std::move(r));
          });
      return rp;
    },
    [=](capacity_atom) { return self->state.services.slots; },
    [=](cancel_atom, const job_key& key) {
      if (auto* job = find(self->state, key))
        self->send(job->worker, cancel_atom_v);
    },
    [=](kill_atom, const job_key& key, std::string& why) {
      if (auto* job = find(self->state, key))
        self->send(job->worker, kill_atom_v, std::move(why));
    },
    [=](spawned_atom, std::string& stage, int32_t pid, std::string& cgroup) {
      auto& st = self->state;
      auto sender = self->current_sender();
      if (!sender)
        return;
      auto it = st.jobs.find(sender->address());
      if (it == st.jobs.end())
        return;
      it->second.pid = pid;
      it->second.cgroup = cgroup;
      if (it->second.listener)
        self->send(it->second.listener, spawned_atom_v, std::move(stage), pid, std::move(cgroup));
    },
  };
}

node_actor spawn_node(caf::actor_system& sys, node_services services) {
  return sys.spawn(node, std::move(services));
}

} // namespace troupe
