#include "actors/resource_sampler.hpp"

#include "adapters/sampling/host_sampler.hpp"

#include <caf/all.hpp>

namespace troupe {

namespace {

struct sampler_state {
  std::unique_ptr<host_sampler> sampler;
  sample_request watched;
  caf::timespan interval{0};
  sample_sink_actor sink;
  uint64_t generation = 0;  // bumped by watch/unwatch: stale ticks are dropped
  static inline const char* name = "resource_sampler";
};

resource_sampler_actor::behavior_type
resource_sampler(resource_sampler_actor::stateful_pointer<sampler_state> self,
                 std::shared_ptr<gpu_source> gpus) {
  self->state.sampler = std::make_unique<host_sampler>(std::move(gpus));
  return {
    [=](snapshot_atom, const sample_request& req) {
      return self->state.sampler->take(req);
    },
    [=](watch_atom, sample_request& req, caf::timespan interval, sample_sink_actor& sink) {
      auto& st = self->state;
      st.watched = std::move(req);
      st.watched.phase = "sample";
      st.interval = interval;
      st.sink = std::move(sink);
      auto gen = ++st.generation;
      if (interval.count() > 0)
        self->delayed_send(self, interval, tick_atom_v, gen);
    },
    [=](unwatch_atom) {
      auto& st = self->state;
      ++st.generation;
      st.sink = nullptr;
    },
    [=](tick_atom, uint64_t gen) {
      auto& st = self->state;
      if (gen != st.generation || !st.sink)
        return;
      self->send(st.sink, sample_atom_v, st.sampler->take(st.watched));
      self->delayed_send(self, st.interval, tick_atom_v, gen);
    },
  };
}

} // namespace

resource_sampler_actor spawn_resource_sampler(caf::actor_system& sys,
                                              std::shared_ptr<gpu_source> gpus) {
  return sys.spawn<caf::detached>(resource_sampler, std::move(gpus));
}

} // namespace troupe
