// Google Benchmark programs for hot paths (issue 15's bench/micro): a
// request/response round trip between two actors on troupe's scheduler
// settings, store group commit through the store_writer (SQLite), parsing a
// pipeline file's text, the JSON of one event, and metadata.json of a
// 20-stage run rendered whole and incrementally. (/proc sampling of a
// process tree: bench/micro/sampler_bench.cpp.)
//   build/bench/micro_bench [--benchmark_filter=...]
#include "actors/store_writer.hpp"
#include "adapters/store/store.hpp"
#include "bench/store_rows.hpp"
#include "messages/json.hpp"
#include "messages/run.hpp"
#include "messages/store.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace {

using namespace troupe;

caf::behavior echo(caf::event_based_actor*) {
  return {[](int32_t x) { return x + 1; }};
}

void BM_ActorRoundTrip(benchmark::State& state) {
  caf::actor_system_config cfg;
  register_types(cfg);
  configure_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto a = sys.spawn(echo);
  caf::scoped_actor self{sys};
  int32_t v = 0;
  for (auto _ : state)
    self->request(a, caf::infinite, v).receive([&](int32_t r) { v = r; }, [](caf::error&) {});
  benchmark::DoNotOptimize(v);
  self->send_exit(a, caf::exit_reason::user_shutdown);
}
BENCHMARK(BM_ActorRoundTrip)->Unit(benchmark::kMicrosecond);

// 100 stage transitions (a job row, an attempt row, an event each) sent to
// the store_writer, then a sync: what group commit makes of them on a
// SQLite file (WAL, synchronous=FULL) in /tmp.
void BM_StoreGroupCommit(benchmark::State& state) {
  caf::actor_system_config cfg;
  register_types(cfg);
  configure_scheduler(cfg);
  caf::actor_system sys{cfg};
  char tmpl[] = "/tmp/troupe-micro-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  auto db = open_store("sqlite:" + dir + "/bench.db");
  if (!db) {
    state.SkipWithError("cannot open the store");
    return;
  }
  auto writer = spawn_store_writer(sys, std::move(*db));
  caf::scoped_actor self{sys};
  const std::string run = "micro-run";
  self->send(writer, persist_atom_v, bench::new_run(run));
  int k = 0;
  for (auto _ : state) {
    for (int i = 0; i < 100; ++i, ++k)
      self->send(writer, persist_atom_v, bench::transition(run, k));
    self->request(writer, caf::infinite, sync_atom_v).receive([](write_health&) {},
                                                              [](caf::error&) {});
  }
  state.SetItemsProcessed(state.iterations() * 100);
  self->send_exit(writer, caf::exit_reason::user_shutdown);
  std::system(("rm -rf '" + dir + "'").c_str());
}
BENCHMARK(BM_StoreGroupCommit)->Unit(benchmark::kMillisecond)->UseRealTime();

std::string pipeline_text(int stages) {
  std::string t = "name: bench\ndefaults: {timeout: 5m, env: {A: b}}\nstages:\n";
  for (int i = 0; i < stages; ++i)
    t += "  - name: s" + std::to_string(i) + "\n    run: [python3, stages/x.py, --n, \"" +
         std::to_string(i) + "\"]\n    retry: {max_attempts: 3, on: [exit_nonzero]}\n";
  return t;
}

void BM_ParsePipeline(benchmark::State& state) {
  auto text = pipeline_text(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    auto p = parse_pipeline(text, "/tmp/bench.yaml");
    benchmark::DoNotOptimize(p);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParsePipeline)->Arg(1)->Arg(20)->Arg(200)->Unit(benchmark::kMicrosecond);

void BM_EventJson(benchmark::State& state) {
  event_row e;
  e.id = 12345;
  e.ts = caf::make_timestamp();
  e.run_id = "01a20cc3-4f6c-7799-a27f-81e73e7e776c";
  e.job = "normalize";
  e.attempt = 2;
  e.message = "attempt 2 of 3 started (exec)";
  e.meta = R"({"strategy":"exec","command":"./stages/normalize.sh && echo ok"})";
  for (auto _ : state) {
    nlohmann::ordered_json j = e;
    auto text = j.dump();
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_EventJson)->Unit(benchmark::kMicrosecond);

run_record run_of(int stages) {
  run_record r;
  r.run_id = "01a20cc3-4f6c-7799-a27f-81e73e7e776c";
  r.pipeline = "bench";
  r.run_dir = "/tmp/out/20261124_090000";
  r.started_at = caf::make_timestamp();
  for (int i = 0; i < stages; ++i) {
    stage_record s;
    s.name = "s" + std::to_string(i);
    s.command = "python3 stages/x.py --n " + std::to_string(i);
    s.stdout_log = "logs/" + s.name + ".stdout.log";
    s.stderr_log = "logs/" + s.name + ".stderr.log";
    r.stages.push_back(s);
  }
  return r;
}

void BM_MetadataWhole(benchmark::State& state) {
  auto r = run_of(20);
  for (auto _ : state) {
    auto text = metadata_document(r);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_MetadataWhole)->Unit(benchmark::kMicrosecond);

// What the artifact_writer does: only the stage that changed is rendered again.
void BM_MetadataOneStageChanged(benchmark::State& state) {
  auto r = run_of(20);
  metadata_renderer renderer;
  renderer.render(r);
  for (auto _ : state) {
    ++r.stages[7].revision;
    auto text = renderer.render(r);
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_MetadataOneStageChanged)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
