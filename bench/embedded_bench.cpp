// troupe embedded: runs launched in-process through the scheduler actor (the
// embedding path), with the coordinator's shared services and the SQLite
// store; each run a one-stage pipeline, recorded like any other (folder,
// metadata.json, logs, store rows).
//
//   embedded_bench throughput N P DIR PROGRAM   N runs, at most P at once:
//                                               prints the wall seconds
//   (PROGRAM noop: a `noop` stage, no process: troupe's own cost per run)
//   ($TROUPE_BENCH_DB: the store's URL, else DIR/troupe.db)
//   embedded_bench latency N DIR PROGRAM        N runs one after another:
//                                               prints launch -> first stage
//                                               start p50 and p99 in ms
#include "actors/node.hpp"
#include "actors/resource_sampler.hpp"
#include "actors/scheduler.hpp"
#include "actors/store_writer.hpp"
#include "adapters/artifacts/io_pool.hpp"
#include "adapters/artifacts/run_folder.hpp"
#include "adapters/process/process_runner.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "runtime/ids.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/run_plan.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

using namespace troupe;
using clock_type = std::chrono::steady_clock;

namespace {

struct bench {
  std::shared_ptr<io_pool> pool = std::make_shared<io_pool>();
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<caf::scoped_actor> self;
  scheduler_actor scheduler;
  std::vector<caf::actor> helpers;
  pipeline_def pipeline;
  std::string dir;

  bench(const std::string& folder, const std::string& program, int32_t max_running)
    : dir(folder) {
    register_types(cfg);
    configure_scheduler(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    self = std::make_unique<caf::scoped_actor>(*sys);
    make_directories(dir);
    // $TROUPE_BENCH_DB: another store (postgresql://...) instead of DIR/troupe.db.
    const char* url = std::getenv("TROUPE_BENCH_DB");
    auto db = open_store(url != nullptr && *url != '\0' ? std::string(url) : dir + "/troupe.db");
    if (!db) {
      std::fprintf(stderr, "embedded_bench: %s\n", describe(db.error()).c_str());
      std::exit(2);
    }
    scheduler_deps deps;
    deps.store = spawn_store_writer(*sys, std::move(*db));
    auto sampler = spawn_resource_sampler(*sys, open_nvml());
    node_services svc{std::make_shared<process_runner>(true, true), nullptr, ""};
    svc.sampler = sampler;
    deps.node = spawn_node(*sys, svc);
    deps.pool = pool;
    deps.listener = caf::actor_cast<progress_listener_actor>(*self);
    deps.max_running = max_running;
    helpers = {caf::actor_cast<caf::actor>(deps.store), caf::actor_cast<caf::actor>(deps.node),
               caf::actor_cast<caf::actor>(sampler)};
    scheduler = spawn_scheduler(*sys, std::move(deps));
    helpers.push_back(caf::actor_cast<caf::actor>(scheduler));
    // PROGRAM "noop": a stage without a process (troupe's own cost alone);
    // "noop-store": the same with `artifacts: store` (no run folder).
    auto stage = program.rfind("noop", 0) == 0 ? std::string("noop: true")
                                               : "run: [\"" + program + "\"]";
    auto head = program == "noop-store" ? std::string("artifacts: store\n") : std::string{};
    auto p = parse_pipeline("name: embedded\n" + head + "stages:\n  - name: job\n    " + stage
                              + "\n",
                            dir + "/embedded.yaml");
    if (!p) {
      std::fprintf(stderr, "embedded_bench: %s\n", describe(p.error()).c_str());
      std::exit(2);
    }
    pipeline = *p;
  }

  ~bench() {
    for (auto& a : helpers)
      (*self)->send_exit(a, caf::exit_reason::user_shutdown);
  }

  void launch() {
    auto now = caf::make_timestamp();
    auto run_dir = pipeline.artifacts_in_store ? caf::expected<std::string>{std::string{}}
                                               : create_run_folder(dir + "/out", now);
    run_start s;
    s.run_id = make_run_id(now);
    s.run_dir = *run_dir;
    s.started_at = now;
    s.pid = static_cast<int32_t>(::getpid());
    s.owner = "embedded_bench";
    s.grace = std::chrono::seconds(5);
    s.sample_interval = std::chrono::seconds(1);
    s.environment = {{"PATH", "/usr/bin:/bin"}};
    (*self)->send(scheduler, launch_atom_v,
                  launch_plan{std::make_shared<run_plan>(make_run_plan(pipeline, s)), 0});
  }

  // Waits for the next progress event of `kind`; false after 60 s of none.
  bool next(progress_event::kind_t kind, int32_t* exit = nullptr) {
    bool got = false, waited_out = false;
    while (!got && !waited_out)
      (*self)->receive(
        [&](progress_event& ev) {
          if (ev.kind == kind) {
            got = true;
            if (exit != nullptr)
              *exit = ev.exit_code;
          }
        },
        [&](std::string&) {},  // the scheduler's answer to a launch
        caf::after(std::chrono::seconds(60)) >> [&] { waited_out = true; });
    return got;
  }
};

double pct(std::vector<double> xs, double p) {
  std::sort(xs.begin(), xs.end());
  auto i = static_cast<size_t>(p / 100 * static_cast<double>(xs.size() - 1) + 0.5);
  return xs[std::min(i, xs.size() - 1)];
}

} // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "throughput" && argc == 6) {
    int n = std::atoi(argv[2]), p = std::atoi(argv[3]);
    bench b{argv[4], argv[5], p};
    auto t0 = clock_type::now();
    for (int i = 0; i < n; ++i)
      b.launch();
    int failed = 0;
    for (int i = 0; i < n; ++i) {
      int32_t code = -1;
      if (!b.next(progress_event::kind_t::run_finished, &code)) {
        std::fprintf(stderr, "embedded_bench: only %d of %d runs ended\n", i, n);
        return 1;
      }
      failed += code == 0 ? 0 : 1;
    }
    std::printf("%.6f\n", std::chrono::duration<double>(clock_type::now() - t0).count());
    return failed == 0 ? 0 : 1;
  }
  if (mode == "latency" && argc == 5) {
    int n = std::atoi(argv[2]);
    bench b{argv[3], argv[4], 0};
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
      auto t0 = clock_type::now();
      b.launch();
      if (!b.next(progress_event::kind_t::stage_started))
        return 1;
      ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
      if (!b.next(progress_event::kind_t::run_finished))
        return 1;
    }
    std::printf("%.3f %.3f\n", pct(ms, 50), pct(ms, 99));
    return 0;
  }
  std::fprintf(stderr, "usage: embedded_bench throughput N P DIR PROGRAM\n"
                       "       embedded_bench latency N DIR PROGRAM\n");
  return 2;
}
