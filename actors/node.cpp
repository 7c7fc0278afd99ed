#include "actors/node.hpp"

#include "actors/http_worker.hpp"
#include "actors/job_worker.hpp"
#include "adapters/process/process_table.hpp"

#include <caf/all.hpp>

#include <csignal>
#include <algorithm>
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
  bool leasing = false;          // asked its GPU broker, no answer (or grant) yet
  gpu_attempt gpu;               // its lease, or why it has none
  bool gpu_oom = false;          // killed for using more GPU memory than leased
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

bool wants_gpu(const job_spec& s) {
  return s.resources.gpus > 0 || s.resources.gpu_memory_bytes > 0;
}

// The attempt's result goes to its requester, once; its resources are
// free again and what waited for them may start.
void deliver(self_ptr self, const job_key& key, job_result r) {
  auto& st = self->state;
  auto it = st.jobs.find(key);
  if (it == st.jobs.end())
    return;  // answered already
  auto& job = it->second;
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

// The same, after its GPU lease is released (whatever the outcome; the
// lease's TTL is the safety net when the broker does not answer): the
// result carries what its processes used.
void finish(self_ptr self, const job_key& key, job_result r) {
  auto& st = self->state;
  auto it = st.jobs.find(key);
  if (it == st.jobs.end())
    return;
  auto& job = it->second;
  // Its worker has answered (or is gone): its slots are free now, and its
  // end (a down message) is no news any more.
  if (job.worker && st.workers.erase(job.worker.address()) > 0) {
    st.used_slots -= job.spec.resources.cpus;
    st.used_memory -= job.spec.resources.memory_bytes;
    self->demonitor(job.worker.address());
    admit(self);
  }
  if (wants_gpu(job.spec) || !job.gpu.reason.empty())
    r.gpu = job.gpu;
  if (job.gpu_oom && r.status != stage_status::succeeded) {
    r.status = stage_status::failed;
    r.failure = failure_code::gpu_oom;
    r.error = job.gpu.reason;
  }
  if (job.gpu.lease_id.empty() || !st.services.gpus) {
    deliver(self, key, std::move(r));
    return;
  }
  auto id = job.gpu.lease_id;
  job.gpu.lease_id.clear();  // (released once, whichever path ends it)
  self->request(st.services.gpus, std::chrono::seconds(2), release_atom_v, id)
    .then(
      [=](gpu_use& u) mutable {
        r.gpu.peak_bytes = u.peak_bytes;
        r.gpu.gpu_seconds = u.gpu_seconds;
        deliver(self, key, std::move(r));
      },
      [=](caf::error&) mutable { deliver(self, key, std::move(r)); });
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


// Into the capacity queue (or straight to a worker when it fits and nothing
// waits before it).
void place(self_ptr self, const job_key& key) {
  auto& st = self->state;
  auto it = st.jobs.find(key);
  if (it == st.jobs.end())
    return;
  auto& job = it->second;
  if (st.waiting.empty() && fits(st, job.spec.resources)) {
    run(self, job);
    return;
  }
  st.waiting.push_back(key);
  auto why = capacity_shortfall(job.spec.resources, st.used_slots, st.used_memory,
                                st.services.slots, st.services.memory_bytes);
  if (why.empty())
    why = std::to_string(st.waiting.size() - 1) + " attempt(s) waiting before it";
  if (job.listener)
    self->send(job.listener, waiting_atom_v, key.stage, "waiting for the node: " + why);
}

void schedule_renewal(self_ptr self, const job_key& key, const gpu_grant& g) {
  if (!g.expires_at)
    return;
  auto left = *g.expires_at - caf::make_timestamp();
  auto every = std::max(caf::timespan{std::chrono::milliseconds(100)}, left / 3);
  self->delayed_send(self, every, renew_atom_v, key);
}

// The lease is the attempt's: its GPUs go into its environment (UUIDs; CUDA
// and NVML then agree on the order), and it goes on to the node's capacity.
void leased(self_ptr self, const job_key& key, const gpu_grant& g) {
  auto& job = self->state.jobs.at(key);
  job.leasing = false;
  job.gpu.lease_id = g.lease_id;
  job.gpu.gpus = g.gpus;
  job.gpu.memory_bytes = g.memory_bytes;
  std::string list;
  for (auto& uuid : g.gpus)
    list += (list.empty() ? "" : ",") + uuid;
  auto& env = job.spec.env;
  set_env(env, "CUDA_DEVICE_ORDER", "PCI_BUS_ID");
  set_env(env, "CUDA_VISIBLE_DEVICES", list);
  set_env(env, "NVIDIA_VISIBLE_DEVICES", list);
  set_env(env, "TROUPE_GPU_LEASE", g.lease_id);
  schedule_renewal(self, key, g);
  place(self, key);
}

// No GPU for it (no broker, no answer in 2 s, safe mode, none free):
// gpu_fallback decides.
void no_gpu(self_ptr self, const job_key& key, const std::string& why) {
  auto& st = self->state;
  auto it = st.jobs.find(key);
  if (it == st.jobs.end())
    return;
  auto& job = it->second;
  job.leasing = false;
  job.gpu.reason = why;
  if (job.spec.gpu_fallback != "cpu") {
    finish(self, key,
           ended_without_worker(job, stage_status::failed, failure_code::gpu_unavailable,
                                "no GPU for it: " + why));
    return;
  }
  job.gpu.fallback = true;
  set_env(job.spec.env, "CUDA_VISIBLE_DEVICES", "");
  set_env(job.spec.env, "TROUPE_GPU_FALLBACK", "1");
  if (job.listener)
    self->send(job.listener, limit_atom_v, key.stage,
               "gpu_fallback: cpu: runs without a GPU (" + why + ")");
  place(self, key);
}

// Asks the broker (at most 2 s) before the attempt may start.
void ask_gpu(self_ptr self, const job_key& key) {
  auto& st = self->state;
  auto& job = st.jobs.at(key);
  if (!st.services.gpus) {
    no_gpu(self, key, "this node has no GPU broker");
    return;
  }
  job.leasing = true;
  gpu_ask ask;
  ask.holder = key.run_id + "/" + key.stage + "#" + std::to_string(key.attempt);
  ask.gpus = job.spec.resources.gpus;
  ask.memory_bytes = job.spec.resources.gpu_memory_bytes;
  ask.wait = job.spec.gpu_fallback == "wait";
  self->request(st.services.gpus, std::chrono::seconds(2), lease_atom_v, std::move(ask))
    .then(
      [=](gpu_grant& g) {
        auto& st = self->state;
        auto it = st.jobs.find(key);
        if (it == st.jobs.end()) {
          // Ended (cancelled) meanwhile: its lease goes back.
          if (!g.lease_id.empty())
            caf::anon_send(st.services.gpus, release_atom_v, g.lease_id);
          return;
        }
        if (g.outcome == "granted") {
          leased(self, key, g);
        } else if (g.outcome == "queued") {
          auto& job = it->second;
          job.leasing = false;
          job.gpu.lease_id = g.lease_id;
          if (job.listener)
            self->send(job.listener, waiting_atom_v, key.stage, "waiting for a GPU: " + g.reason);
          if (job.spec.timeout.count() > 0)
            self->delayed_send(self, job.spec.timeout, timeout_atom_v, key);
        } else {
          no_gpu(self, key, g.reason);
        }
      },
      [=](caf::error& err) {
        no_gpu(self, key, "the GPU broker did not answer within 2 s ("
                            + self->system().render(err) + ")");
      });
}

// The attempt whose lease is `id`, if any.
node_job* by_lease(node_state& st, const std::string& id) {
  for (auto& [key, job] : st.jobs)
    if (!id.empty() && job.gpu.lease_id == id)
      return &job;
  return nullptr;
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
      if (wants_gpu(placed.spec))
        ask_gpu(self, key);
      else
        place(self, key);
      return rp;
    },
    [=](capacity_atom) { return self->state.services.slots; },
    [=](snapshot_atom, sample_request& req) -> caf::result<snapshot> {
      auto& sampler = self->state.services.sampler;
      if (!sampler)
        return caf::make_error(caf::sec::invalid_argument, "this node has no sampler");
      return self->delegate(sampler, snapshot_atom_v, std::move(req));
    },
    [=](watch_atom, sample_request& req, caf::timespan every, sample_sink_actor& sink) {
      if (auto& sampler = self->state.services.sampler)
        self->send(sampler, watch_atom_v, std::move(req), every, std::move(sink));
    },
    [=](unwatch_atom, sample_request& req) {
      if (auto& sampler = self->state.services.sampler)
        self->send(sampler, unwatch_atom_v, std::move(req));
    },
    [=](cancel_atom, const job_key& key) {
      auto& st = self->state;
      auto it = st.jobs.find(key);
      if (it == st.jobs.end())
        return;
      if (it->second.worker) {
        self->send(it->second.worker, cancel_atom_v);
        return;
      }
      // Still waiting for room (or a GPU): it ends here, never started.
      st.waiting.erase(std::remove(st.waiting.begin(), st.waiting.end(), key), st.waiting.end());
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
      if (!job.gpu.lease_id.empty() && st.services.gpus)
        self->send(st.services.gpus, attach_atom_v, job.gpu.lease_id, pid);
      if (job.listener)
        self->send(job.listener, spawned_atom_v, std::move(stage), pid, std::move(cgroup));
    },
    [=](lease_atom, gpu_grant& g) {
      auto& st = self->state;
      auto* job = by_lease(st, g.lease_id);
      if (job == nullptr) {
        if (g.outcome == "granted" && st.services.gpus)
          caf::anon_send(st.services.gpus, release_atom_v, g.lease_id);  // nobody's now
        return;
      }
      auto key = job->key;
      if (g.outcome == "granted" && job->leasing == false && !job->worker) {
        leased(self, key, g);
      } else if (g.outcome == "expired" && job->listener) {
        self->send(job->listener, limit_atom_v, key.stage,
                   "GPU lease " + g.lease_id + " expired: its TTL passed unrenewed");
      }
    },
    [=](limit_atom, gpu_use& u) {
      auto& st = self->state;
      auto* job = by_lease(st, u.lease_id);
      if (job == nullptr)
        return;
      job->gpu.over = true;
      auto booked = job->gpu.memory_bytes * static_cast<int64_t>(job->gpu.gpus.size());
      auto what = "GPU lease " + u.lease_id + ": its processes use " + mib(u.used_bytes)
                  + " of GPU memory, over the " + mib(booked) + " leased";
      if (job->listener)
        self->send(job->listener, limit_atom_v, job->key.stage,
                   what + (st.services.gpu_memory_kill ? "; stopped (gpu_memory_enforce: kill)"
                                                       : ""));
      if (st.services.gpu_memory_kill && job->worker) {
        job->gpu_oom = true;
        job->gpu.reason = what;
        self->send(job->worker, kill_atom_v, what);
      }
    },
    [=](renew_atom, const job_key& key) {
      auto& st = self->state;
      auto it = st.jobs.find(key);
      if (it == st.jobs.end() || it->second.gpu.lease_id.empty() || !st.services.gpus)
        return;
      self->request(st.services.gpus, std::chrono::seconds(2), renew_atom_v,
                    it->second.gpu.lease_id)
        .then([=](gpu_grant& g) {
                if (g.outcome == "active")
                  schedule_renewal(self, key, g);
              },
              [=](caf::error&) {
                // Tried again soon: the TTL leaves room for a missed renewal.
                self->delayed_send(self, std::chrono::seconds(1), renew_atom_v, key);
              });
    },
    [=](timeout_atom, const job_key& key) {
      auto& st = self->state;
      auto it = st.jobs.find(key);
      if (it == st.jobs.end() || it->second.worker || it->second.gpu.gpus.size() > 0)
        return;  // started, or has its GPUs
      auto waited = std::chrono::duration_cast<std::chrono::seconds>(it->second.spec.timeout);
      finish(self, key,
             ended_without_worker(it->second, stage_status::failed, failure_code::gpu_unavailable,
                                  "no GPU for it within its timeout ("
                                    + std::to_string(waited.count()) + " s)"));
    },
  };
}

node_actor spawn_node(caf::actor_system& sys, node_services services) {
  return sys.spawn(node, std::move(services));
}

} // namespace troupe
