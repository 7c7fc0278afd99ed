#include "actors/gpu_broker.hpp"

#include "adapters/process/process_table.hpp"
#include "adapters/sampling/gpu_host_lock.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "adapters/store/store.hpp"
#include "adapters/threads/thread_name.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <set>

#include <unistd.h>

namespace troupe {

namespace {

// What the broker keeps of a lease beyond the book: who to tell, which
// processes are its, what they used.
struct lease_watch {
  gpu_listener_actor requester;  // told of grants, expiry, over-use
  int32_t leader = 0;          // its tree's process group (attach)
  std::set<int32_t> pids;      // every pid of its tree seen so far
  int64_t peak = 0;
  bool told_over = false;
  caf::timestamp granted_at;
  int32_t count = 0;           // GPUs held
};

struct broker_state {
  std::shared_ptr<gpu_source> source;
  gpu_broker_config cfg;
  std::unique_ptr<gpu_lease_book> book;
  std::vector<gpu_figures> last;  // the last NVML read
  std::map<std::string, lease_watch> watches;
  gpu_broker_stats stats;  // counters; wait_seconds since the last read
  std::unique_ptr<store> db;  // the leases across restarts (none: in memory only)
  std::map<std::string, gpu_lease_row> stored;  // as last written, with its version
  std::unique_ptr<gpu_host_locks> locks;  // the GPUs this broker owns on the host
  std::set<std::string> owned;            // their UUIDs
  std::deque<gpu_event> events;  // the latest (kept_events), oldest first
  int64_t last_event_id = 0;
  static constexpr size_t kept_events = 1000;
  static inline const char* name = "gpu_broker";
};

using self_ptr = gpu_broker_actor::stateful_pointer<broker_state>;

std::vector<gpu_device> devices_of(const std::vector<gpu_figures>& gpus) {
  std::vector<gpu_device> out;
  for (auto& g : gpus)
    out.push_back({g.uuid, g.index, g.name, g.mem_total_bytes});
  return out;
}

gpu_grant grant_of(const broker_state& st, const gpu_lease& l, const std::string& outcome) {
  gpu_grant g;
  g.outcome = outcome;
  g.lease_id = l.id;
  g.holder = l.holder;
  g.gpus = l.gpus;
  for (auto& uuid : l.gpus)
    for (auto& d : st.book->devices())
      if (d.uuid == uuid)
        g.indices.push_back(d.index);
  g.memory_bytes = l.memory_bytes;
  g.expires_at = l.expires_at;
  g.priority = l.priority;
  g.granted_at = l.granted_at;
  return g;
}

// What a lease's processes use now, over every GPU (a process on a GPU the
// lease does not hold counts too: that is over-use as well).
int64_t used_by(const lease_watch& w, const std::vector<gpu_figures>& gpus) {
  int64_t sum = 0;
  for (auto& g : gpus)
    for (auto& p : g.processes)
      if (w.pids.count(p.pid) != 0 && p.used_bytes > 0)
        sum += p.used_bytes;
  return sum;
}

bool any_present(const lease_watch& w, const std::vector<gpu_figures>& gpus) {
  for (auto& g : gpus)
    for (auto& p : g.processes)
      if (w.pids.count(p.pid) != 0)
        return true;
  return false;
}

gpu_use use_of(const std::string& id, const lease_watch& w, int64_t used, caf::timestamp now) {
  gpu_use u;
  u.lease_id = id;
  u.used_bytes = used;
  u.peak_bytes = std::max(w.peak, used);
  u.gpu_seconds = w.count * std::chrono::duration<double>(now - w.granted_at).count();
  return u;
}

// The lease's tree now: its leader's process group.
void refresh_pids(lease_watch& w) {
  if (w.leader > 0)
    for (auto pid : live_tree(w.leader))
      w.pids.insert(pid);
}

std::string mib_text(int64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

// An event: kept (the latest kept_events) and, with a store, stored.
void record(broker_state& st, std::string kind, std::string lease_id, std::string holder,
            std::string message) {
  gpu_event e;
  e.at = caf::make_timestamp();
  e.kind = std::move(kind);
  e.lease_id = std::move(lease_id);
  e.holder = std::move(holder);
  e.message = std::move(message);
  e.id = st.last_event_id + 1;
  if (st.db) {
    gpu_event_row r{0, e.at, st.cfg.node, e.kind, e.lease_id, e.holder, e.message};
    if (auto id = st.db->add_gpu_event(r))
      e.id = std::max(e.id, *id);
  }
  st.last_event_id = e.id;
  st.events.push_back(std::move(e));
  if (st.events.size() > broker_state::kept_events)
    st.events.pop_front();
}

// The stored events of this node, the latest kept_events of them.
void load_events(broker_state& st) {
  int64_t after = 0;
  for (;;) {
    auto page = st.db->gpu_events(st.cfg.node, after, 1000);
    if (!page || page->empty())
      return;
    for (auto& r : *page) {
      st.events.push_back({r.id, r.ts, r.kind, r.lease_id, r.holder, r.message});
      if (st.events.size() > broker_state::kept_events)
        st.events.pop_front();
      after = st.last_event_id = r.id;
    }
    if (page->size() < 1000)
      return;
  }
}

std::string seconds_text(caf::timespan t) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(t).count()) + " s";
}

// "safe_mode on -> off, default_ttl 3600 s -> 60 s": what a policy change changed.
std::string policy_change(const gpu_policy& a, const gpu_policy& b) {
  std::string out;
  auto add = [&](const char* name, const std::string& x, const std::string& y) {
    if (x != y)
      out += (out.empty() ? "" : ", ") + std::string(name) + " " + x + " -> " + y;
  };
  add("safe_mode", a.safe_mode ? "on" : "off", b.safe_mode ? "on" : "off");
  add("default_ttl", seconds_text(a.default_ttl), seconds_text(b.default_ttl));
  add("reserve", mib_text(a.reserve_bytes), mib_text(b.reserve_bytes));
  add("max_leases_per_holder", std::to_string(a.max_leases_per_holder),
      std::to_string(b.max_leases_per_holder));
  add("release_grace", seconds_text(a.release_grace), seconds_text(b.release_grace));
  return out.empty() ? "nothing changed" : out;
}

// Grants and expiries the book decided: their requesters are told.
void tell(self_ptr self, const lease_changes& c) {
  auto& st = self->state;
  st.stats.expired += static_cast<int64_t>(c.expired.size());
  for (auto& l : c.expired) {
    record(st, "expired", l.id, l.holder,
           "lease " + l.id + " of " + l.holder + " expired: its TTL of " + seconds_text(l.ttl)
             + " passed unrenewed");
    if (auto w = st.watches.find(l.id); w != st.watches.end() && w->second.requester)
      self->send(w->second.requester, lease_atom_v, grant_of(st, l, "expired"));
  }
  for (auto& id : c.freed_by_grace) {
    std::string holder;
    for (auto& l : c.freed)
      if (l.id == id)
        holder = l.holder;
    record(st, "freed_by_grace", id, holder,
           "lease " + id + " of " + holder + ": its booking was freed after the release grace of "
             + seconds_text(st.book->policy().release_grace)
             + " although NVML still showed its processes");
  }
  for (auto& l : c.granted) {
    ++st.stats.granted;
    st.stats.wait_seconds.push_back(
      std::chrono::duration<double>(*l.granted_at - l.requested_at).count());
    auto w = st.watches.find(l.id);
    if (w == st.watches.end())
      continue;
    w->second.granted_at = *l.granted_at;
    w->second.count = static_cast<int32_t>(l.gpus.size());
    if (w->second.requester)
      self->send(w->second.requester, lease_atom_v, grant_of(st, l, "granted"));
  }
  for (auto& l : c.freed)
    st.watches.erase(l.id);
}

// -- the store: leases as rows, written by compare-and-set ----------------

std::string gpus_text(const std::vector<std::string>& gpus) {
  std::string out = "[";
  for (auto& g : gpus)
    out += (out.size() > 1 ? ",\"" : "\"") + g + "\"";
  return out + "]";
}

std::vector<std::string> gpus_of(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  bool in = false;
  for (char ch : text) {
    if (ch == '"') {
      if (in)
        out.push_back(cur);
      cur.clear();
      in = !in;
    } else if (in) {
      cur += ch;
    }
  }
  return out;
}

gpu_lease_row row_of(const gpu_lease& l, const std::string& node) {
  gpu_lease_row r;
  r.id = l.id;
  r.node = node;
  r.holder = l.holder;
  r.state = to_string(l.state);
  r.gpus = gpus_text(l.gpus);
  r.exclusive = l.exclusive;
  r.count = l.count;
  r.memory_bytes = l.memory_bytes;
  r.priority = l.priority;
  r.ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(l.ttl).count();
  r.requested_at = l.requested_at;
  r.granted_at = l.granted_at;
  r.expires_at = l.expires_at;
  r.released_at = l.released_at;
  r.end_reason = l.end_reason;
  return r;
}

gpu_lease lease_of(const gpu_lease_row& r) {
  gpu_lease l;
  l.id = r.id;
  l.holder = r.holder;
  l.state = r.state == "queued" ? lease_state::queued
            : r.state == "active" ? lease_state::active
                                  : lease_state::releasing;
  l.gpus = gpus_of(r.gpus);
  l.exclusive = r.exclusive;
  l.count = r.count;
  l.memory_bytes = r.memory_bytes;
  l.priority = r.priority;
  l.ttl = std::chrono::milliseconds(r.ttl_ms);
  l.requested_at = r.requested_at;
  l.granted_at = r.granted_at;
  l.expires_at = r.expires_at;
  l.released_at = r.released_at;
  l.end_reason = r.end_reason;
  return l;
}

bool same_row(const gpu_lease_row& a, const gpu_lease_row& b) {
  return a.state == b.state && a.gpus == b.gpus && a.granted_at == b.granted_at
         && a.expires_at == b.expires_at && a.released_at == b.released_at
         && a.end_reason == b.end_reason;
}

// Every lease whose row changed is written (compare-and-set on its version);
// a lease freed from the book is written as released or expired, history.
void sync_store(self_ptr self) {
  auto& st = self->state;
  if (!st.db)
    return;
  std::set<std::string> live;
  for (auto& l : st.book->leases()) {
    live.insert(l.id);
    auto row = row_of(l, st.cfg.node);
    auto it = st.stored.find(l.id);
    if (it != st.stored.end()) {
      if (same_row(row, it->second))
        continue;
      row.version = it->second.version;
    }
    if (auto ok = st.db->put_gpu_lease(row); ok && *ok) {
      row.version += 1;
      st.stored[l.id] = row;
    }
  }
  for (auto it = st.stored.begin(); it != st.stored.end();) {
    if (live.count(it->first) != 0) {
      ++it;
      continue;
    }
    auto row = it->second;
    row.state = row.end_reason == "expired" ? "expired" : "released";
    if (!row.released_at)
      row.released_at = caf::make_timestamp();
    (void) st.db->put_gpu_lease(row);
    it = st.stored.erase(it);
  }
}

// The leases stored by this node's broker before a restart, taken back.
void restore(self_ptr self) {
  auto& st = self->state;
  auto rows = st.db->live_gpu_leases(st.cfg.node);
  if (!rows)
    return;
  for (auto& r : *rows) {
    auto l = lease_of(r);
    if (!st.book->restore(l))
      continue;
    st.stored[r.id] = r;
    lease_watch w;  // its requester is gone with the process that asked
    w.granted_at = l.granted_at ? *l.granted_at : l.requested_at;
    w.count = static_cast<int32_t>(l.gpus.size());
    st.watches[l.id] = std::move(w);
  }
}

std::function<std::string()> lease_ids() {
  return [gen = std::mt19937_64{std::random_device{}()}]() mutable {
    static const char* hex = "0123456789abcdef";
    std::string id = "lease-";
    auto x = gen();
    for (int i = 0; i < 12; ++i, x >>= 4)
      id += hex[x & 15];
    return id;
  };
}

// The host-wide locks of the GPUs this broker does not own yet, taken where
// no other broker holds them (adapters/sampling/gpu_host_lock.hpp). Taken at
// the first lease request, not at start: a node that never leases a GPU
// (a CPU-only troupe run) leaves them to others. Once taken, kept for the
// broker's life.
void claim(broker_state& st) {
  if (st.cfg.lock_dir.empty() || st.owned.size() == st.book->devices().size())
    return;
  if (!st.locks)
    st.locks = std::make_unique<gpu_host_locks>(st.cfg.lock_dir);
  std::vector<std::string> want;
  for (auto& d : st.book->devices())
    if (st.owned.count(d.uuid) == 0)
      want.push_back(d.uuid);
  auto refused =
    st.locks->take(want, "process " + std::to_string(::getpid()) + " (" + st.cfg.owner + ")");
  for (auto& uuid : want) {
    auto r = refused.find(uuid);
    auto was = st.book->elsewhere().count(uuid) != 0;
    if (r == refused.end()) {
      st.owned.insert(uuid);
      st.book->set_elsewhere(uuid, "");
      if (was)
        record(st, "held_elsewhere", "", "", uuid + " is this broker's now");
    } else if (!was) {
      st.book->set_elsewhere(uuid, r->second);
      record(st, "held_elsewhere", "", "",
             uuid + " is owned by another troupe GPU broker on this host (" + r->second
               + "): nothing is granted on it here");
    } else {
      st.book->set_elsewhere(uuid, r->second);
    }
  }
}

// Verification: NVML's processes against each lease.
void verify(self_ptr self) {
  auto& st = self->state;
  auto now = caf::make_timestamp();
  if (!st.watches.empty()) {
    st.last = st.source->read();
    // One pass over /proc for every lease's tree (not one per lease).
    std::vector<proc_entry> table;
    bool scanned = false;
    for (auto& l : st.book->leases()) {
      auto w = st.watches.find(l.id);
      if (w == st.watches.end() || l.state == lease_state::queued)
        continue;
      if (l.state == lease_state::active) {
        if (w->second.leader > 0) {
          if (!scanned) {
            table = scan_processes();
            scanned = true;
          }
          for (auto* p : tree_of(table, w->second.leader))
            w->second.pids.insert(p->pid);
        }
        auto used = used_by(w->second, st.last);
        w->second.peak = std::max(w->second.peak, used);
        auto booked = l.memory_bytes * static_cast<int64_t>(l.gpus.size());
        if (used > booked && !w->second.told_over) {
          w->second.told_over = true;
          ++st.stats.overuse;
          auto u = use_of(l.id, w->second, used, now);
          u.over = true;
          record(st, "overuse", l.id, l.holder,
                 "lease " + l.id + " of " + l.holder + ": its processes use " + mib_text(used)
                   + " of GPU memory, " + mib_text(booked) + " booked");
          if (w->second.requester)
            self->send(w->second.requester, limit_atom_v, u);
        }
      } else if (!any_present(w->second, st.last)) {
        // Released, and NVML shows none of its processes: the memory is free.
        st.book->processes_gone(l.id, now);
        st.watches.erase(w);
      }
    }
  }
  tell(self, st.book->advance(now));
  sync_store(self);
}

} // namespace

gpu_broker_actor::behavior_type gpu_broker(self_ptr self, std::shared_ptr<gpu_source> source,
                                           gpu_broker_config cfg, bool own_thread) {
  if (own_thread)
    name_this_thread("gpu-broker");  // (detached: this is its thread)
  auto& st = self->state;
  st.source = std::move(source);
  st.cfg = cfg;
  st.last = st.source->read();
  st.book = std::make_unique<gpu_lease_book>(devices_of(st.last), cfg.policy, lease_ids());
  if (!cfg.store_url.empty() && !st.book->devices().empty()) {
    if (auto db = open_store(cfg.store_url)) {
      st.db = std::move(*db);
      load_events(st);
      restore(self);
      if (!st.book->leases().empty())
        claim(st);  // its leases' GPUs: this broker's again
    }
  }
  if (!st.book->devices().empty())
    self->delayed_send(self, cfg.verify_interval, tick_atom_v);  // nothing to verify without
  return {
    [=](lease_atom, gpu_ask& ask) -> gpu_grant {
      auto& st = self->state;
      auto now = caf::make_timestamp();
      lease_request r;
      r.holder = ask.holder;
      r.gpus = ask.gpus;
      r.memory_bytes = ask.memory_bytes;
      if (ask.ttl_ms >= 0)
        r.ttl = caf::timespan{std::chrono::milliseconds(ask.ttl_ms)};
      r.priority = ask.priority;
      r.wait = ask.wait;
      claim(st);
      auto o = st.book->request(r, now);
      if (o.kind == lease_outcome::denied) {
        ++st.stats.denied;
        gpu_grant g;
        g.outcome = "denied";
        g.holder = ask.holder;
        g.reason = st.source->status().empty() ? o.reason
                                                : o.reason + " (NVML: " + st.source->status()
                                                    + ")";
        return g;
      }
      if (o.kind == lease_outcome::granted) {
        ++st.stats.granted;
        st.stats.wait_seconds.push_back(0);
      }
      lease_watch w;
      w.requester = caf::actor_cast<gpu_listener_actor>(self->current_sender());
      w.granted_at = now;
      if (ask.pid > 0) {
        w.leader = ask.pid;
        w.pids.insert(ask.pid);
      }
      w.count = static_cast<int32_t>(o.lease.gpus.size());
      st.watches[o.lease.id] = std::move(w);
      auto g = grant_of(st, o.lease, o.kind == lease_outcome::granted ? "granted" : "queued");
      g.reason = o.reason;
      sync_store(self);
      return g;
    },
    [=](renew_atom, const std::string& id) -> gpu_grant {
      auto& st = self->state;
      if (auto l = st.book->renew(id, caf::make_timestamp())) {
        sync_store(self);
        return grant_of(st, *l, "active");
      }
      gpu_grant g;
      g.outcome = "denied";
      g.lease_id = id;
      g.reason = "no active lease " + id + " (released, expired or unknown)";
      return g;
    },
    [=](release_atom, const std::string& id) -> gpu_use {
      auto& st = self->state;
      auto now = caf::make_timestamp();
      auto w = st.watches.find(id);
      if (w == st.watches.end()) {
        st.book->release(id, now);
        gpu_use u;
        u.lease_id = id;
        return u;
      }
      // What it used up to now, and whether its processes are gone already.
      st.last = st.source->read();
      refresh_pids(w->second);
      auto used = used_by(w->second, st.last);
      auto u = use_of(id, w->second, used, now);
      auto was = st.book->find(id);
      st.book->release(id, now);
      if (was && was->state == lease_state::queued) {
        st.watches.erase(w);
      } else if (!any_present(w->second, st.last)) {
        st.book->processes_gone(id, now);
        st.watches.erase(w);
      }
      tell(self, st.book->advance(now));
      sync_store(self);
      return u;
    },
    [=](attach_atom, const std::string& id, int32_t pid) {
      auto& st = self->state;
      if (auto w = st.watches.find(id); w != st.watches.end()) {
        w->second.leader = pid;
        w->second.pids.insert(pid);
      }
    },
    [=](snapshot_atom) -> gpu_inventory {
      auto& st = self->state;
      gpu_inventory inv;
      st.last = st.source->read();
      inv.reason = st.source->status();
      inv.available = inv.reason.empty() && !st.last.empty();
      if (inv.reason.empty() && st.last.empty())
        inv.reason = "NVML reports no GPUs";
      inv.driver_version = st.source->driver_version();
      inv.safe_mode = st.book->policy().safe_mode;
      for (auto& [uuid, who] : st.book->elsewhere())
        inv.held_elsewhere.push_back(uuid + ": " + who);
      inv.gpus = st.last;
      return inv;
    },
    [=](leases_atom) -> gpu_lease_list {
      auto& st = self->state;
      gpu_lease_list out;
      for (auto& l : st.book->leases())
        out.leases.push_back(grant_of(st, l, to_string(l.state)));
      return out;
    },
    [=](policy_atom) -> gpu_policy { return self->state.book->policy(); },
    [=](policy_atom, const gpu_policy& p, const std::string& who) -> std::string {
      auto& st = self->state;
      auto was = st.book->policy();
      auto refused = st.book->set_policy(p);
      if (refused.empty())
        record(st, "policy", "", "", "policy changed by " + who + ": " + policy_change(was, p));
      return refused;
    },
    [=](events_atom, int64_t after) -> gpu_event_list {
      gpu_event_list out;
      for (auto& e : self->state.events)
        if (e.id > after)
          out.events.push_back(e);
      return out;
    },
    [=](stats_atom) -> gpu_broker_stats {
      auto& st = self->state;
      auto out = st.stats;
      out.active = out.queued = 0;
      for (auto& l : st.book->leases())
        (l.state == lease_state::queued ? out.queued : out.active) += 1;
      st.stats.wait_seconds.clear();
      return out;
    },
    [=](tick_atom) {
      auto& st = self->state;
      if (!st.book->elsewhere().empty() && !st.book->leases().empty())
        claim(st);  // requests wait: perhaps the other broker is gone
      verify(self);
      self->delayed_send(self, self->state.cfg.verify_interval, tick_atom_v);
    },
  };
}

gpu_broker_actor spawn_gpu_broker(caf::actor_system& sys, std::shared_ptr<gpu_source> gpus,
                                  gpu_broker_config cfg) {
  // NVML calls and /proc reads of lease trees block: with GPUs the broker
  // has a thread of its own. Without (no NVML, or none reported) it never
  // blocks — every answer comes from the empty book — and takes none.
  if (gpus->status().empty() && !gpus->read().empty())
    return sys.spawn<caf::detached>(gpu_broker, std::move(gpus), cfg, true);
  return sys.spawn(gpu_broker, std::move(gpus), cfg, false);
}

} // namespace troupe
