// gpu_lease_book: grants, exclusivity, shares, the queue (priority, then
// arrival), expiry, release after processes are gone or the grace, safe
// mode and policy checks; with an injected clock and no actor system.
#include "actors/gpu_lease_book.hpp"

#include <gtest/gtest.h>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

constexpr int64_t gib = 1LL << 30;

const caf::timestamp t0{std::chrono::hours(100)};

std::vector<gpu_device> two_gpus() {
  return {{"GPU-a", 0, "A", 80 * gib}, {"GPU-b", 1, "B", 40 * gib}};
}

gpu_policy open_policy() {
  gpu_policy p;
  p.safe_mode = false;
  return p;
}

lease_request ask(const std::string& holder, int32_t gpus, int64_t bytes, bool wait,
                  int32_t prio) {
  lease_request r;
  r.holder = holder;
  r.gpus = gpus;
  r.memory_bytes = bytes;
  r.wait = wait;
  r.priority = prio;
  return r;
}

lease_request whole(const std::string& holder, int32_t n, bool wait = false, int32_t prio = 0) {
  return ask(holder, n, 0, wait, prio);
}

lease_request share(const std::string& holder, int64_t bytes, bool wait = false,
                    int32_t prio = 0) {
  return ask(holder, 0, bytes, wait, prio);
}

} // namespace

TEST(GpuLeaseBook, SafeModeDeniesEveryLeaseWithANote) {
  gpu_lease_book book{two_gpus(), gpu_policy{}};  // a new install: safe mode on
  auto o = book.request(whole("svc", 1), t0);
  EXPECT_EQ(o.kind, lease_outcome::denied);
  EXPECT_NE(o.reason.find("safe mode is on"), std::string::npos) << o.reason;
  EXPECT_TRUE(book.leases().empty());
  // While it is on, only safe_mode may change.
  auto p = book.policy();
  p.reserve_bytes = gib;
  EXPECT_NE(book.set_policy(p).find("only safe_mode may change"), std::string::npos);
  p = book.policy();
  p.safe_mode = false;
  EXPECT_EQ(book.set_policy(p), "");
  EXPECT_EQ(book.request(whole("svc", 1), t0).kind, lease_outcome::granted);
  p.safe_mode = true;
  EXPECT_EQ(book.set_policy(p), "") << "turning it on is always accepted";
}

TEST(GpuLeaseBook, WholeGpusAreExclusiveAndSharesFitBesideEachOther) {
  gpu_lease_book book{two_gpus(), open_policy()};
  auto a = book.request(whole("run-1", 1), t0);
  ASSERT_EQ(a.kind, lease_outcome::granted) << a.reason;
  EXPECT_EQ(a.lease.gpus, std::vector<std::string>{"GPU-a"});
  EXPECT_EQ(a.lease.memory_bytes, 80 * gib);
  // A share cannot go on GPU-a (leased whole): it goes on GPU-b.
  auto s1 = book.request(share("run-2", 30 * gib), t0);
  ASSERT_EQ(s1.kind, lease_outcome::granted) << s1.reason;
  EXPECT_EQ(s1.lease.gpus, std::vector<std::string>{"GPU-b"});
  auto s2 = book.request(share("run-3", 10 * gib), t0);
  ASSERT_EQ(s2.kind, lease_outcome::granted) << s2.reason;
  EXPECT_EQ(book.booked("GPU-b"), 40 * gib);
  auto s3 = book.request(share("run-4", gib), t0);
  EXPECT_EQ(s3.kind, lease_outcome::denied);
  EXPECT_NE(s3.reason.find("no GPU has 1024 MiB unbooked"), std::string::npos) << s3.reason;
  // GPU-b carries shares: no whole-GPU lease there.
  auto w = book.request(whole("run-5", 1), t0);
  EXPECT_EQ(w.kind, lease_outcome::denied);
  EXPECT_NE(w.reason.find("1 whole GPU(s) asked, 0 carry no lease now"), std::string::npos)
    << w.reason;
}

TEST(GpuLeaseBook, ASharePicksTheBestFitAndTheReserveIsNeverBooked) {
  auto p = open_policy();
  p.reserve_bytes = 2 * gib;
  gpu_lease_book book{two_gpus(), p};
  auto s = book.request(share("x", 30 * gib), t0);
  EXPECT_EQ(s.lease.gpus, std::vector<std::string>{"GPU-b"}) << "38 GiB there: the best fit";
  auto too_big = book.request(share("y", 79 * gib), t0);
  EXPECT_EQ(too_big.kind, lease_outcome::denied);
  EXPECT_NE(too_big.reason.find("the largest GPU here has 79872 MiB to lease"),
            std::string::npos)
    << too_big.reason;
  EXPECT_EQ(book.request(share("y", 78 * gib), t0).kind, lease_outcome::granted);
}

TEST(GpuLeaseBook, RequestsThatCanNeverBeMetAreDeniedByName) {
  gpu_lease_book book{two_gpus(), open_policy()};
  EXPECT_NE(book.request(whole("x", 3), t0).reason.find("asks for 3 GPU(s); this node has 2"),
            std::string::npos);
  lease_request both = whole("x", 1);
  both.memory_bytes = gib;
  EXPECT_NE(book.request(both, t0).reason.find("one of them"), std::string::npos);
  gpu_lease_book none{{}, open_policy()};
  EXPECT_EQ(none.request(whole("x", 1), t0).reason, "this node has no GPUs");
}

TEST(GpuLeaseBook, TheQueueGoesByPriorityThenArrivalWithoutOvertaking) {
  gpu_lease_book book{{{"GPU-a", 0, "A", 80 * gib}}, open_policy()};
  auto held = book.request(whole("first", 1), t0);
  ASSERT_EQ(held.kind, lease_outcome::granted);
  auto low = book.request(whole("low", 1, true, 0), t0 + 1s);
  auto high = book.request(whole("high", 1, true, 5), t0 + 2s);
  auto low2 = book.request(whole("low2", 1, true, 0), t0 + 3s);
  ASSERT_EQ(low.kind, lease_outcome::queued);
  ASSERT_EQ(high.kind, lease_outcome::queued);
  // A small share that would fit nowhere anyway, and one that must not
  // overtake the queue even if it fitted: denied when it does not wait.
  auto nowait = book.request(share("eager", gib), t0 + 4s);
  EXPECT_EQ(nowait.kind, lease_outcome::denied);
  book.release(held.lease.id, t0 + 5s);
  book.processes_gone(held.lease.id, t0 + 5s);
  auto c = book.advance(t0 + 5s);
  ASSERT_EQ(c.granted.size(), 1u);
  EXPECT_EQ(c.granted[0].holder, "high");
  book.release(c.granted[0].id, t0 + 6s);
  book.processes_gone(c.granted[0].id, t0 + 6s);
  c = book.advance(t0 + 6s);
  ASSERT_EQ(c.granted.size(), 1u);
  EXPECT_EQ(c.granted[0].holder, "low") << "arrival order within a priority";
  EXPECT_EQ(book.find(low2.lease.id)->state, lease_state::queued);
  EXPECT_TRUE(book.release(low2.lease.id, t0 + 7s)) << "a queued request can be withdrawn";
  EXPECT_FALSE(book.find(low2.lease.id));
}

TEST(GpuLeaseBook, AnUnrenewedLeaseExpiresAndARenewedOneDoesNot) {
  auto p = open_policy();
  p.default_ttl = 10s;
  gpu_lease_book book{two_gpus(), p};
  auto a = book.request(whole("a", 1), t0);
  auto b = book.request(whole("b", 1), t0);
  EXPECT_EQ(a.lease.expires_at, caf::optional<caf::timestamp>{t0 + 10s});
  ASSERT_TRUE(book.renew(b.lease.id, t0 + 8s));
  auto c = book.advance(t0 + 10s);
  ASSERT_EQ(c.expired.size(), 1u);
  EXPECT_EQ(c.expired[0].id, a.lease.id);
  EXPECT_EQ(book.find(a.lease.id)->state, lease_state::releasing);
  EXPECT_EQ(book.find(a.lease.id)->end_reason, "expired");
  EXPECT_FALSE(book.renew(a.lease.id, t0 + 11s)) << "an expired lease is not renewed";
  EXPECT_EQ(book.find(b.lease.id)->expires_at, caf::optional<caf::timestamp>{t0 + 18s});
  lease_request forever = whole("c", 1);
  forever.ttl = caf::timespan{0};
  book.release(b.lease.id, t0 + 12s);
  book.processes_gone(b.lease.id, t0 + 12s);
  auto f = book.request(forever, t0 + 12s);
  ASSERT_EQ(f.kind, lease_outcome::granted) << f.reason;
  EXPECT_FALSE(f.lease.expires_at) << "ttl 0: no expiry";
}

TEST(GpuLeaseBook, AReleasedLeaseIsFreedWhenItsProcessesAreGoneOrAfterTheGrace) {
  auto p = open_policy();
  p.release_grace = 30s;
  gpu_lease_book book{{{"GPU-a", 0, "A", 80 * gib}}, p};
  auto a = book.request(share("a", 60 * gib), t0);
  ASSERT_TRUE(book.release(a.lease.id, t0 + 1s));
  // Still booked: NVML has not shown its processes gone.
  EXPECT_EQ(book.booked("GPU-a"), 60 * gib);
  auto waiting = book.request(share("b", 40 * gib, true), t0 + 2s);
  EXPECT_EQ(waiting.kind, lease_outcome::queued);
  EXPECT_TRUE(book.advance(t0 + 20s).granted.empty());
  auto c = book.advance(t0 + 31s);
  ASSERT_EQ(c.freed_by_grace, std::vector<std::string>{a.lease.id});
  ASSERT_EQ(c.granted.size(), 1u);
  EXPECT_EQ(c.granted[0].holder, "b");
  // processes_gone frees at once.
  book.release(c.granted[0].id, t0 + 32s);
  EXPECT_TRUE(book.processes_gone(c.granted[0].id, t0 + 32s));
  EXPECT_EQ(book.booked("GPU-a"), 0);
}

TEST(GpuLeaseBook, PoliciesAreCheckedAndTheHolderLimitHolds) {
  gpu_lease_book book{two_gpus(), open_policy()};
  auto p = book.policy();
  p.default_ttl = -1s;
  EXPECT_NE(book.set_policy(p).find("default_ttl"), std::string::npos);
  p = book.policy();
  p.reserve_bytes = -1;
  EXPECT_NE(book.set_policy(p).find("reserve"), std::string::npos);
  p = book.policy();
  p.release_grace = caf::timespan{0};
  EXPECT_NE(book.set_policy(p).find("release_grace"), std::string::npos);
  p = book.policy();
  p.max_leases_per_holder = 1;
  EXPECT_EQ(book.set_policy(p), "");
  EXPECT_EQ(book.request(share("svc", gib), t0).kind, lease_outcome::granted);
  auto second = book.request(share("svc", gib), t0);
  EXPECT_EQ(second.kind, lease_outcome::denied);
  EXPECT_NE(second.reason.find("svc holds 1 lease(s) already (max_leases_per_holder: 1)"),
            std::string::npos)
    << second.reason;
}

TEST(GpuLeaseBook, AGpuOwnedByAnotherBrokerIsNeverGrantedUntilItIsGiven) {
  gpu_lease_book book{two_gpus(), open_policy()};
  book.set_elsewhere("GPU-a", "process 4242 (troupe coordinator)");
  // A whole GPU: only GPU-b is this broker's.
  auto one = book.request(whole("run-1", 1), t0);
  ASSERT_EQ(one.kind, lease_outcome::granted) << one.reason;
  EXPECT_EQ(one.lease.gpus, std::vector<std::string>{"GPU-b"});
  // A share that fits only on GPU-a (80 GiB) is refused, naming the owner.
  auto big = book.request(share("run-2", 60 * gib), t0);
  EXPECT_EQ(big.kind, lease_outcome::denied);
  EXPECT_NE(big.reason.find("owned by another troupe GPU broker on this host: GPU-a "
                            "(process 4242 (troupe coordinator))"),
            std::string::npos)
    << big.reason;
  auto waits = book.request(whole("run-3", 1, true), t0 + 1s);
  ASSERT_EQ(waits.kind, lease_outcome::queued);
  EXPECT_NE(waits.reason.find("GPU-a (process 4242"), std::string::npos) << waits.reason;
  EXPECT_TRUE(book.advance(t0 + 2s).granted.empty()) << "GPU-a is still elsewhere";
  // The other broker ends: its GPU is this one's, and the queue moves.
  book.set_elsewhere("GPU-a", "");
  EXPECT_TRUE(book.elsewhere().empty());
  auto c = book.advance(t0 + 3s);
  ASSERT_EQ(c.granted.size(), 1u);
  EXPECT_EQ(c.granted[0].holder, "run-3");
  EXPECT_EQ(c.granted[0].gpus, std::vector<std::string>{"GPU-a"});
}
