// The coordinator: one long-lived process that runs many runs at once.
//
// It holds one actor system with the node's shared services (one process
// runner, one sampler, one io_pool for all run folders, one store_writer)
// and the scheduler actor, which supervises a run_supervisor per run. The
// HTTP API (runtime/api_server.*) and the schedule loop call the methods
// below from their own threads: none of them runs on a CAF scheduler thread,
// and each blocking store read uses a connection of its own (store_pool).
//
// Launches: a registered pipeline (a file in --pipelines) by name; the run
// is persisted `queued` and started in the same step when the limits allow.
// Schedules: claimed with a lease from the store, so that several
// coordinators on one PostgreSQL launch each due tick once (docs/coordinator.md).
#pragma once

#include "actors/scheduler.hpp"
#include "adapters/http_server/http_server.hpp"
#include "adapters/store/store.hpp"
#include "runtime/gpu_api.hpp"
#include "runtime/http_api.hpp"
#include "messages/gpu_broker.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/rerun.hpp"

#include <caf/fwd.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace troupe {

struct coordinator_config {
  std::string listen = "127.0.0.1:8420";
  std::string db;  // empty: <output>/troupe.db
  std::string output = "output/running_order";
  std::string pipelines;  // the folder of registered pipelines
  std::string token;      // empty: no auth
  int32_t max_running = 0;
  int32_t node_slots = 0;  // the local node's CPU slots over all runs (0: no limit)
  gpu_policy gpu;          // `gpu:` in the config file (TROUPE_GPU_* override it)
  bool gpu_memory_kill = false;  // gpu.memory_enforce: kill
  std::string id;  // empty: host:pid
  std::string log_format = "text";
  std::string log_level = "info";
  bool drain = false;
  caf::timespan lease = std::chrono::seconds(30);          // a schedule claim's lease
  caf::timespan schedule_poll = std::chrono::seconds(1);   // longest sleep between due checks
  caf::timespan reconcile_every = std::chrono::seconds(5);  // looks for runs of dead owners
  caf::timespan sample_interval = std::chrono::seconds(1);
  caf::timespan grace = std::chrono::seconds(5);
  caf::timespan schedule_grace = std::chrono::seconds(60);  // a tick later than this was missed
  // Fault injection for tests ($TROUPE_FAULT_CLAIM_DELAY): how long a claim
  // is held before its launches are written, so that a kill lands inside it.
  caf::timespan fault_claim_delay{0};
  http_server_config http;  // the API server's limits and threads
  // Launches (and schedule ticks) are refused while the output folder's
  // filesystem has less than this free: a run there could not keep its logs.
  size_t min_free_space = size_t{64} << 20;
};


struct launch_request {
  std::string pipeline;
  int32_t priority = 0;
  std::vector<std::string> enable;
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> params;  // the pipeline's params: (resolve_params)
  std::string launched_by = "api";  // api, schedule, trigger (a run taken up again: its own)
};


/// A pool of store connections for threads that read (and the schedule
/// loop, which claims): one connection per borrower at a time.
class store_pool {
public:
  explicit store_pool(std::string url) : url_(std::move(url)) {
  }
  class lease {
  public:
    lease(store_pool* pool, std::unique_ptr<store> s) : pool_(pool), s_(std::move(s)) {
    }
    lease(lease&&) = default;
    ~lease() {
      if (s_)
        pool_->give_back(std::move(s_));
    }
    store* operator->() {
      return s_.get();
    }
    store& operator*() {
      return *s_;
    }

  private:
    store_pool* pool_;
    std::unique_ptr<store> s_;
  };
  caf::expected<lease> borrow();

private:
  void give_back(std::unique_ptr<store> s);
  std::string url_;
  std::mutex mtx_;
  std::vector<std::unique_ptr<store>> idle_;
};

/// A Prometheus histogram (seconds); observed from any thread.
class histogram {
public:
  void observe(double seconds);
  /// Appends its HELP, TYPE and series to `out`.
  void render(std::string& out, const char* name, const char* help);

private:
  static constexpr double buckets_[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  std::mutex mtx_;
  int64_t counts_[std::size(buckets_) + 1] = {};
  double sum_ = 0;
  int64_t n_ = 0;
};

/// Counters and histograms for /metrics; updated from any thread.
class coordinator_metrics {
public:
  void launched(const std::string& run_id, std::chrono::steady_clock::time_point at);
  /// The first stage of `run_id` started: observes launch-to-start latency.
  void first_stage_started(const std::string& run_id);
  void forget(const std::string& run_id);
  std::atomic<int64_t> launches{0};
  std::atomic<int64_t> claims{0};
  std::atomic<int64_t> takeovers{0};
  std::atomic<int64_t> schedule_launches{0};
  std::atomic<int64_t> schedule_skips{0};
  std::atomic<int64_t> events_streamed{0};
  std::atomic<int64_t> http_requests{0};
  std::atomic<int64_t> adopted{0};
  histogram launch_to_start;
  histogram store_commit;  // a launch's queued row: sent to the store until committed
  histogram gpu_lease_wait;  // a GPU lease: asked until granted (0 when at once)

private:
  std::mutex mtx_;
  std::map<std::string, std::chrono::steady_clock::time_point> pending_;
};

/// Rung whenever a run's events may have changed (its supervisor reported):
/// SSE streams and log followers look again when their run's generation
/// moved, instead of polling the store blindly.
class event_bell {
public:
  void ring(const std::string& run_id);
  /// Waits until rung after `seen` or `timeout`; returns the generation.
  uint64_t wait(uint64_t seen, std::chrono::milliseconds timeout);
  uint64_t generation();
  /// The generation of the last ring for `run_id` (0: none remembered).
  uint64_t generation_of(const std::string& run_id);
  /// Called after each ring, on the ringing thread (set before the first ring).
  void on_ring(std::function<void()> f);

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  uint64_t gen_ = 0;
  std::map<std::string, uint64_t> runs_;  // the last few thousand runs rung
  std::function<void()> listener_;
};

/// The run a client names (its id, a unique prefix, or its folder's name):
/// 404 none, 409 `ambiguous` (the message lists the candidates), 503.
api_result<run_row> find_run(store& db, const std::string& text);

class coordinator {
public:
  using logger = std::function<void(const std::string& level, const std::string& message)>;

  coordinator(coordinator_config cfg, logger log);
  ~coordinator();

  /// Opens and migrates the store, loads the pipelines, starts the actors,
  /// adopts or reconciles what dead coordinators left, and starts the
  /// schedule loop. Errors name what is wrong.
  caf::error start();
  /// Stops the schedule loop; with `drain`, waits for the running runs to
  /// end (and starts no queued ones); without, leaves them to the next start.
  void stop(bool drain);

  const coordinator_config& config() const {
    return cfg_;
  }
  const std::string& id() const {
    return id_;
  }

  // -- for the API ---------------------------------------------------------
  api_result<run_row> launch(const launch_request& req);
  /// 202-worthy when true; the errors are 404 (unknown run) and 409 (ended,
  /// or run by another coordinator).
  /// `reason` ("" for a plain request) becomes the run's reason.
  api_result<run_row> cancel(const std::string& run_id, const std::string& reason = "");
  /// Launches a run of schedule `id` now, as its tick would (its options,
  /// its overlap policy; forbid: 409 while one of its runs has not ended),
  /// without moving its next tick; a paused schedule can be triggered.
  /// The run's launched_by is `trigger`; the schedule's events say `triggered`
  /// and by `who`.
  api_result<run_row> trigger(const std::string& id, const std::string& who);

  /// The node's GPU broker, as the API asks it (docs/gpu.md); after start().
  class gpu_service& gpu() {
    return *gpu_;
  }
  /// troupe rerun through the API: 404 unknown run or pipeline, 409 the run
  /// has not ended, its pipeline changed (without allow_changed) or nothing
  /// failed, 400 a bad `from`. The run, running again.
  api_result<run_row> rerun(const std::string& run_id, const rerun_request& req);
  /// The pipelines it launches, by name.
  std::vector<pipeline_def> pipelines();
  std::optional<pipeline_def> find_pipeline(const std::string& name);
  /// (queued, running) as the scheduler has them; nullopt when it does not answer.
  std::optional<std::pair<int32_t, int32_t>> scheduler_stats();
  /// The store answers and the scheduler runs.
  bool ready();
  caf::expected<store_pool::lease> reader() {
    return pool_.borrow();
  }
  coordinator_metrics& metrics() {
    return metrics_;
  }
  event_bell& bell() {
    return bell_;
  }
  /// The environment every stage starts from: the coordinator's, without
  /// troupe's secrets (its token, the store's password, TROUPE_*, PGPASS*).
  std::map<std::string, std::string> inheritance() const;
  /// Wakes the schedule loop (a schedule was created or changed).
  void poke_schedules();
  /// Checks a schedule's fields and computes its first next_run_at: 400
  /// naming the field for a cron that never fires and, when its timing is
  /// new (`retimed`), a once whose `at` has passed.
  api_result<schedule_row> prepare_schedule(schedule_row s, bool retimed = true);
  /// The schedule loop's step, public for tests: claims and handles due schedules.
  void schedule_step();
  void trim_when_idle();
  bool trim_due_ = false;  // runs came and went since the last malloc_trim

private:
  void schedule_loop();
  void reconcile_step();
  void cancel_step();
  struct prepared {
    std::shared_ptr<struct run_plan> plan;
    run_row row;
  };
  api_result<prepared> prepare(const pipeline_def& p, const launch_request& req,
                               const std::string& run_id, const std::string& run_dir,
                               int64_t epoch, caf::timestamp created, bool resumed = false);
  void dispatch(prepared p, int32_t priority);
  void handle_claim(store& db, const claimed_schedule& c);
  /// One of schedule `s`'s events, by this coordinator, now.
  schedule_event_row schedule_event(const schedule_row& s, const std::string& kind,
                                    caf::optional<caf::timestamp> tick,
                                    const std::string& run_id, const std::string& message) const;
  /// overlap: replace: cancels `active` ("cancelled by schedule S (overlap:
  /// replace): `why`"), a `replaced` event each.
  void replace_runs(const schedule_row& s, const std::vector<run_row>& active,
                    caf::timestamp tick, const std::string& why,
                    std::vector<schedule_event_row>& events);
  void load_pipelines();
  /// A run's folder, or "" for a pipeline with `artifacts: store`.
  caf::expected<std::string> new_run_folder(const pipeline_def& p, caf::timestamp now);
  void remove_run_folder(const std::string& run_dir);
  /// Why no run may start in --output now (too little free space), or "".
  std::string output_full();

  coordinator_config cfg_;
  logger log_;
  std::string id_;
  std::string owner_;
  std::string url_;
  store_pool pool_;
  coordinator_metrics metrics_;
  event_bell bell_;
  std::mutex pipelines_mtx_;
  std::map<std::string, pipeline_def> pipelines_;
  struct actors;
  std::unique_ptr<actors> actors_;
  std::unique_ptr<class gpu_service> gpu_;
  std::thread schedule_thread_;
  std::mutex loop_mtx_;
  std::condition_variable loop_cv_;
  bool loop_stop_ = false;
  bool loop_poked_ = false;
  std::set<std::string> cancels_sent_;  // the schedule loop's: store cancel requests passed on
};

} // namespace troupe
