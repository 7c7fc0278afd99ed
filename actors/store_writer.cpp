#include "actors/store_writer.hpp"

#include "adapters/store/store.hpp"
#include "messages/errors.hpp"

#include <caf/all.hpp>

#include <cstdio>
#include <map>
#include <optional>
#include <set>

namespace troupe {

namespace {

struct writer_state {
  std::unique_ptr<store> db;
  std::vector<store_batch> queued;
  std::vector<store_batch> failed;  // batches a commit lost, tried again at each sync
  size_t failed_rows = 0;
  bool flush_pending = false;
  write_health health;  // rows refused or lost, and the first reason
  std::map<std::string, write_health> by_run;  // the same for each run
  bool reported = false;
  std::map<std::string, std::string> beating;  // unfinished run -> its owner
  // Syncs that came in while batches were queued: answered after the flush
  // that commits them, so that one commit serves every run in the mailbox
  // (answering each sync with a flush of its own made one small commit per
  // run: 20 round trips a run on PostgreSQL).
  std::vector<std::pair<caf::typed_response_promise<write_health>, std::optional<std::string>>>
    waiting;
  static inline const char* name = "store_writer";
};

using self_ptr = store_actor::stateful_pointer<writer_state>;

constexpr size_t max_retained_rows = 100000;

void charge(writer_state& st, const std::string& run, int32_t rows, const std::string& why) {
  auto& h = st.by_run[run];
  h.failures += rows;
  if (h.first_error.empty())
    h.first_error = why;
}

// A batch a commit lost: each of its runs is charged with its own rows.
void charge_lost(writer_state& st, const store_batch& b, const std::string& why) {
  std::map<std::string, int32_t> rows;
  for (auto& r : b.runs)
    ++rows[r.run_id];
  for (auto& r : b.jobs)
    ++rows[r.run_id];
  for (auto& r : b.attempts)
    ++rows[r.run_id];
  for (auto& e : b.events)
    ++rows[e.run_id];
  for (auto& [run, n] : rows)
    charge(st, run, n, why);
}

void report(writer_state& st, const caf::error& err) {
  // Once per writer: a database that is gone fails every commit after.
  if (!st.reported) {
    std::fprintf(stderr, "troupe: store: %s\n", describe(err).c_str());
    if (st.health.first_error.empty())
      st.health.first_error = describe(err);
  }
  st.reported = true;
}

void count(writer_state& st, const apply_result& res) {
  st.health.failures += static_cast<int32_t>(res.refused.size());
  if (!res.refused.empty() && st.health.first_error.empty())
    st.health.first_error = "refused: " + res.refused.front();
  for (size_t i = 0; i < res.refused.size() && i < res.refused_runs.size(); ++i)
    charge(st, res.refused_runs[i], 1, "refused: " + res.refused[i]);
}

// Writes the batches lost earlier, oldest first, until one fails again.
// Their failures were counted when they were lost and stay counted.
void retry_failed(writer_state& st) {
  size_t done = 0;
  for (; done < st.failed.size(); ++done)
    if (!st.db->apply(st.failed[done]))
      break;
  for (size_t k = 0; k < done; ++k)
    st.failed_rows -= st.failed[k].size();
  st.failed.erase(st.failed.begin(), st.failed.begin() + static_cast<long>(done));
}

// One transaction for everything queued; if it fails, each batch in a
// transaction of its own, so that one bad batch loses only itself.
void flush_queued(self_ptr self);

write_health health_of(const writer_state& st, const std::optional<std::string>& run) {
  if (!run)
    return st.health;
  auto it = st.by_run.find(*run);
  return it == st.by_run.end() ? write_health{} : it->second;
}

// Commits what is queued, then answers the syncs that waited for it.
void flush(self_ptr self) {
  flush_queued(self);
  auto& st = self->state;
  for (auto& [rp, run] : std::exchange(st.waiting, {}))
    rp.deliver(health_of(st, run));
}

// A sync: answered now when nothing is queued, else by the pending flush
// (behind every batch already in the mailbox).
caf::result<write_health> sync(self_ptr self, std::optional<std::string> run) {
  auto& st = self->state;
  if (st.queued.empty() && st.failed.empty())
    return health_of(st, run);
  auto rp = self->make_response_promise<write_health>();
  st.waiting.emplace_back(rp, std::move(run));
  if (!st.flush_pending) {
    st.flush_pending = true;
    self->send(self, flush_atom_v);
  }
  return rp;
}

void flush_queued(self_ptr self) {
  auto& st = self->state;
  st.flush_pending = false;
  if (!st.failed.empty()) {
    // What was lost first goes first: rows move forward in order.
    retry_failed(st);
    if (!st.failed.empty()) {
      for (auto& b : st.queued) {
        st.health.failures += static_cast<int32_t>(b.size());
        charge_lost(st, b, st.health.first_error);
        if (st.failed_rows + b.size() <= max_retained_rows) {
          st.failed_rows += b.size();
          st.failed.push_back(std::move(b));
        }
      }
      st.queued.clear();
      return;
    }
  }
  if (st.queued.empty())
    return;
  auto batches = std::exchange(st.queued, {});
  if (batches.size() > 1) {
    store_batch all;
    for (auto& b : batches)
      all.append(store_batch{b});
    if (auto res = st.db->apply(all)) {
      count(st, *res);
      return;
    }
  }
  for (auto& b : batches) {
    auto res = st.db->apply(b);
    if (res) {
      count(st, *res);
    } else {
      report(st, res.error());
      st.health.failures += static_cast<int32_t>(b.size());
      charge_lost(st, b, describe(res.error()));
      // Kept, in order, for the next sync: a full disk that gets space back
      // (troupe's reserve released at a run's end) still gets every row.
      if (st.failed_rows + b.size() <= max_retained_rows) {
        st.failed_rows += b.size();
        st.failed.push_back(std::move(b));
      }
    }
  }
}

} // namespace

store_actor spawn_store_writer(caf::actor_system& sys, std::unique_ptr<store> db,
                               caf::timespan heartbeat) {
  auto fn = [](self_ptr self, std::shared_ptr<std::unique_ptr<store>> db,
               caf::timespan heartbeat) -> store_actor::behavior_type {
    self->state.db = std::move(*db);
    if (heartbeat.count() > 0)
      self->delayed_send(self, heartbeat, tick_atom_v);
    return {
      [=](persist_atom, store_batch& batch) {
        auto& st = self->state;
        if (batch.empty())
          return;
        for (auto& r : batch.runs) {
          if (is_terminal(r.status) || r.owner.empty())
            st.beating.erase(r.run_id);
          else
            st.beating[r.run_id] = r.owner;
        }
        st.queued.push_back(std::move(batch));
        if (!st.flush_pending) {
          st.flush_pending = true;
          // Behind everything already in the mailbox: those batches join this commit.
          self->send(self, flush_atom_v);
        }
      },
      [=](flush_atom) { flush(self); },
      [=](tick_atom) {
        auto& st = self->state;
        flush(self);  // a run's last rows first: a finished run needs no heartbeat
        std::set<std::string> owners;
        for (auto& [run, owner] : st.beating)
          owners.insert(owner);
        auto now = caf::make_timestamp();
        for (auto& owner : owners)  // one write per owner, however many runs
          if (auto err = st.db->heartbeat(owner, now))
            report(st, err);
        self->delayed_send(self, heartbeat, tick_atom_v);
      },
      [=](sync_atom) -> caf::result<write_health> { return sync(self, std::nullopt); },
      [=](sync_atom, const std::string& run) -> caf::result<write_health> {
        return sync(self, run);
      },
    };
  };
  auto holder = std::make_shared<std::unique_ptr<store>>(std::move(db));
  return sys.spawn<caf::detached>(fn, holder, heartbeat);
}

} // namespace troupe
