// Persisted state transitions per second: each transition is what the
// run_supervisor sends per stage event (a job row, an attempt row, an
// event). Baseline in the same run: one transaction per transition straight
// on the adapter. Then the same through the store_writer actor, whose group
// commit puts everything queued into one transaction.
//   store_bench URL [TRANSITIONS]
#include "actors/store_writer.hpp"
#include "bench/store_rows.hpp"
#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace troupe;
using troupe::bench::new_run;
using troupe::bench::transition;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: store_bench URL [TRANSITIONS]\n");
    return 2;
  }
  std::string url = argv[1];
  int n = argc > 2 ? std::atoi(argv[2]) : 2000;
  auto stamp = std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  auto db = open_store(url);
  if (!db) {
    std::fprintf(stderr, "store_bench: %s\n", describe(db.error()).c_str());
    return 1;
  }
  // Baseline: one transaction per transition.
  auto run1 = "direct-" + stamp;
  (*db)->apply(new_run(run1));
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < n; ++k)
    if (!(*db)->apply(transition(run1, k)))
      return 1;
  double direct = seconds_since(t0);

  // Group commit through the store_writer.
  caf::actor_system_config cfg;
  register_types(cfg);
  configure_scheduler(cfg);
  caf::actor_system sys{cfg};
  auto writer = spawn_store_writer(sys, std::move(*db));
  caf::scoped_actor self{sys};
  auto run2 = "grouped-" + stamp;
  self->send(writer, persist_atom_v, new_run(run2));
  int32_t failures = -1;
  t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < n; ++k)
    self->send(writer, persist_atom_v, transition(run2, k));
  self->request(writer, caf::infinite, sync_atom_v)
    .receive([&](troupe::write_health& h) { failures = h.failures; }, [&](caf::error&) {});
  double grouped = seconds_since(t0);
  self->send_exit(writer, caf::exit_reason::user_shutdown);
  std::printf("%s: %d transitions (job row + attempt row + event each)\n", url.c_str(), n);
  std::printf("  one transaction each: %8.0f transitions/s (%.3f ms each)\n", n / direct,
              direct * 1000 / n);
  std::printf("  store_writer, group commit: %8.0f transitions/s (%.3f ms each)  %.1fx\n",
              n / grouped, grouped * 1000 / n, direct / grouped);
  return failures == 0 ? 0 : 1;
}
