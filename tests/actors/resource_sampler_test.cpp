// resource_sampler on the real scheduler: several watches at once (two runs'
// stages), each keyed by (run, stage, attempt), served by one /proc pass a
// tick; unwatching one leaves the others.
#include "actors/resource_sampler.hpp"
#include "tests/support/real_system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// Collects every snapshot any sink receives.
struct collected {
  std::mutex mtx;
  std::vector<snapshot> snaps;

  size_t count(const std::string& run) {
    std::lock_guard<std::mutex> g{mtx};
    size_t n = 0;
    for (auto& s : snaps)
      n += s.run_id == run ? 1 : 0;
    return n;
  }
};

sample_sink_actor::behavior_type sink(sample_sink_actor::pointer, std::shared_ptr<collected> c) {
  return {[=](sample_atom, snapshot& s) {
    std::lock_guard<std::mutex> g{c->mtx};
    c->snaps.push_back(std::move(s));
  }};
}

pid_t sleeper() {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execlp("sleep", "sleep", "30", nullptr);
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  return pid;
}

struct ResourceSamplerTest : troupe::test::real_system_test {};

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred())
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

} // namespace

TEST_F(ResourceSamplerTest, TwoRunsAreWatchedAtOnceFromOnePassAndUnwatchedApart) {
  auto a = sleeper(), b = sleeper();
  auto got = std::make_shared<collected>();
  auto sampler = spawn_resource_sampler(sys, nullptr);
  auto to = sys.spawn(sink, got);
  sample_request ra{"run-a", "s", "sample", a, {}, 1};
  sample_request rb{"run-b", "s", "sample", b, {}, 1};
  self->send(sampler, watch_atom_v, ra, caf::timespan{50ms}, to);
  self->send(sampler, watch_atom_v, rb, caf::timespan{50ms}, to);
  ASSERT_TRUE(eventually([&] { return got->count("run-a") >= 3 && got->count("run-b") >= 3; },
                         5s))
    << "a second watch used to replace the first";
  {
    // Same tick, same pass: the two runs' samples share their timestamps,
    // and each sees its own tree.
    std::lock_guard<std::mutex> g{got->mtx};
    std::map<caf::timestamp, std::set<std::string>> by_ts;
    for (auto& s : got->snaps) {
      by_ts[s.ts].insert(s.run_id);
      ASSERT_TRUE(s.process);
      auto want = s.run_id == "run-a" ? a : b;
      ASSERT_EQ(s.process->pids, std::vector<int32_t>{want}) << s.run_id;
    }
    size_t shared = 0;
    for (auto& [ts, runs] : by_ts)
      shared += runs.size() == 2 ? 1 : 0;
    EXPECT_GE(shared, 2u) << "one /proc pass serves both watches";
  }
  // Unwatch run-a: run-b goes on.
  self->send(sampler, unwatch_atom_v, ra);
  std::this_thread::sleep_for(100ms);
  auto a_before = got->count("run-a"), b_before = got->count("run-b");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(got->count("run-a"), a_before) << "run-a is no longer watched";
  EXPECT_GE(got->count("run-b"), b_before + 3) << "run-b still is";
  // A watch of the same key replaces only itself.
  sample_request rb2 = rb;
  self->send(sampler, watch_atom_v, rb2, caf::timespan{50ms}, to);
  self->send(sampler, unwatch_atom_v, rb);
  self->send_exit(sampler, caf::exit_reason::user_shutdown);
  self->send_exit(to, caf::exit_reason::user_shutdown);
  for (auto pid : {a, b}) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
}

// Watches started at different moments (runs launched one after another)
// share their ticks: one /proc pass serves all of them each interval, not
// one pass per watch (200 sleeping runs cost 41 % of a core before this).
TEST_F(ResourceSamplerTest, WatchesStartedApartShareTheirTicks) {
  auto pid = sleeper();
  auto got = std::make_shared<collected>();
  auto sampler = spawn_resource_sampler(sys, nullptr);
  auto to = sys.spawn(sink, got);
  constexpr int watches = 10;
  for (int i = 0; i < watches; ++i) {
    sample_request r{"run-" + std::to_string(i), "s", "sample", pid, {}, 1};
    self->send(sampler, watch_atom_v, r, caf::timespan{200ms}, to);
    std::this_thread::sleep_for(17ms);  // 10 starts spread over most of an interval
  }
  std::this_thread::sleep_for(1200ms);
  std::set<caf::timestamp> passes;
  size_t samples = 0;
  {
    std::lock_guard<std::mutex> g{got->mtx};
    for (auto& s : got->snaps)
      passes.insert(s.ts);
    samples = got->snaps.size();
  }
  EXPECT_GE(samples, static_cast<size_t>(watches * 4));
  // About one pass per 200 ms (7 in 1.35 s), where each watch on its own
  // clock made about one pass per sample (more than 40).
  EXPECT_LE(passes.size(), 10u) << samples << " samples from " << passes.size() << " passes";
  self->send_exit(sampler, caf::exit_reason::user_shutdown);
  self->send_exit(to, caf::exit_reason::user_shutdown);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

// Stages that start close together share one /proc pass for their `before`
// snapshots (its ts is the pass's, before either start); a pass older than
// 250 ms is not reused, and `after` snapshots are always taken fresh.
TEST_F(ResourceSamplerTest, BeforeSnapshotsCloseTogetherShareOnePass) {
  auto sampler = spawn_resource_sampler(sys, nullptr);
  auto take = [&](const std::string& run, const char* phase) {
    snapshot out;
    self->request(sampler, caf::infinite, snapshot_atom_v,
                  sample_request{run, "s", phase, 0, {}, 1})
      .receive([&](snapshot& s) { out = std::move(s); }, [](caf::error&) {});
    return out;
  };
  auto t0 = caf::make_timestamp();
  auto a = take("run-a", "before");
  auto b = take("run-b", "before");
  EXPECT_EQ(a.ts, b.ts) << "one pass for both";
  EXPECT_EQ(b.run_id, "run-b");
  EXPECT_EQ(b.phase, "before");
  EXPECT_GE(a.ts, t0);
  EXPECT_LE(b.ts, caf::make_timestamp());
  auto after = take("run-a", "after");
  EXPECT_GT(after.ts, b.ts) << "after is always a pass of its own";
  std::this_thread::sleep_for(300ms);
  auto c = take("run-c", "before");
  EXPECT_GT(c.ts, after.ts) << "an old pass is not reused";
  self->send_exit(sampler, caf::exit_reason::user_shutdown);
}
