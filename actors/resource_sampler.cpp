#include "actors/resource_sampler.hpp"

#include "adapters/sampling/host_sampler.hpp"

#include <caf/all.hpp>

#include <map>
#include <optional>
#include <tuple>

namespace troupe {

namespace {

using watch_key = std::tuple<std::string, std::string, int32_t>;  // run, stage, attempt

watch_key key_of(const sample_request& r) {
  return {r.run_id, r.stage, r.attempt};
}

struct watch {
  sample_request request;
  caf::timespan interval{0};
  sample_sink_actor sink;
  std::chrono::steady_clock::time_point due;
};

// A `before` snapshot (no process yet: the host figures only) may be the
// last /proc pass's, when that is this recent: many stages starting close
// together (a coordinator's runs) then share one pass. Its `ts` stays the
// pass's own, which is before the stage starts.
constexpr auto before_reuse = std::chrono::milliseconds(250);

struct sampler_state {
  std::unique_ptr<host_sampler> sampler;
  std::optional<snapshot> last_pass;  // the newest pass, its host part
  std::chrono::steady_clock::time_point last_pass_at;
  std::chrono::steady_clock::time_point origin = std::chrono::steady_clock::now();
  std::map<watch_key, watch> watches;
  uint64_t timer = 0;  // the armed tick's generation; older ticks are dropped
  std::chrono::steady_clock::time_point timer_at;
  static inline const char* name = "resource_sampler";
};

using self_ptr = resource_sampler_actor::stateful_pointer<sampler_state>;

// The first point after `t` of the grid origin + k * interval: watches of
// one interval share their ticks, so that one /proc pass serves them all
// (200 runs started at different moments used to cost 200 passes a second).
std::chrono::steady_clock::time_point on_grid(const sampler_state& st,
                                              std::chrono::steady_clock::time_point t,
                                              caf::timespan interval) {
  auto since = t - st.origin;
  auto k = since / interval + 1;
  return st.origin + k * interval;
}

// Arms one tick for the earliest due watch, unless one is armed as early.
void arm(self_ptr self) {
  auto& st = self->state;
  if (st.watches.empty())
    return;
  auto next = std::chrono::steady_clock::time_point::max();
  for (auto& [k, w] : st.watches)
    next = std::min(next, w.due);
  if (st.timer != 0 && st.timer_at <= next)
    return;
  st.timer_at = next;
  auto delay = next - std::chrono::steady_clock::now();
  self->delayed_send(self, std::max(delay, decltype(delay){0}), tick_atom_v, ++st.timer);
}

resource_sampler_actor::behavior_type resource_sampler(self_ptr self,
                                                       std::shared_ptr<gpu_source> gpus) {
  self->state.sampler = std::make_unique<host_sampler>(std::move(gpus));
  return {
    [=](snapshot_atom, const sample_request& req) {
      auto& st = self->state;
      auto now = std::chrono::steady_clock::now();
      if (req.pgid <= 0 && req.phase == "before" && st.last_pass
          && now - st.last_pass_at < before_reuse) {
        auto s = *st.last_pass;
        s.run_id = req.run_id;
        s.stage = req.stage;
        s.phase = req.phase;
        return s;
      }
      auto s = st.sampler->take(req);
      st.last_pass = s;
      st.last_pass->process = caf::none;
      st.last_pass_at = now;
      return s;
    },
    [=](watch_atom, sample_request& req, caf::timespan interval, sample_sink_actor& sink) {
      auto& st = self->state;
      if (interval.count() <= 0)
        return;
      req.phase = "sample";
      auto key = key_of(req);
      // At least half an interval after the start, then on the grid.
      auto first = on_grid(st, std::chrono::steady_clock::now() + interval / 2, interval);
      st.watches[key] = watch{std::move(req), interval, std::move(sink), first};
      arm(self);
    },
    [=](unwatch_atom, const sample_request& req) {
      self->state.watches.erase(key_of(req));
    },
    [=](tick_atom, uint64_t gen) {
      auto& st = self->state;
      if (gen != st.timer)
        return;  // superseded by an earlier one
      st.timer = 0;
      // Every watch due now (or within a millisecond) from one /proc pass.
      auto now = std::chrono::steady_clock::now();
      std::vector<watch*> due;
      std::vector<sample_request> reqs;
      for (auto& [k, w] : st.watches) {
        if (w.due <= now + std::chrono::milliseconds(1)) {
          due.push_back(&w);
          reqs.push_back(w.request);
        }
      }
      if (!reqs.empty()) {
        auto snaps = st.sampler->take_many(reqs);
        st.last_pass = snaps.front();
        st.last_pass->process = caf::none;
        st.last_pass_at = now;
        for (size_t i = 0; i < due.size(); ++i) {
          self->send(due[i]->sink, sample_atom_v, std::move(snaps[i]));
          due[i]->due = on_grid(st, now, due[i]->interval);
        }
      }
      arm(self);
    },
  };
}

} // namespace

resource_sampler_actor spawn_resource_sampler(caf::actor_system& sys,
                                              std::shared_ptr<gpu_source> gpus) {
  return sys.spawn<caf::detached>(resource_sampler, std::move(gpus));
}

} // namespace troupe
