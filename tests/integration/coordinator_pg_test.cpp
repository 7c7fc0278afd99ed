// Several coordinators on one real PostgreSQL (the ctest fixture's server,
// tests/support/pg_server.sh), sharing the same schedules: every due tick is
// launched exactly once, checked from the runs table, also when one of them
// is SIGKILLed half-way with its claims held.
#include "tests/support/coordinator_process.hpp"
#include "tests/support/pg_url.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// A database of its own on the shared server: no other test's schedules.
std::string fresh_database() {
  auto url = pg_url();
  auto name = "coord_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}());
  auto rc = std::system(("psql -q '" + url + "' -c 'CREATE DATABASE " + name + "' >/dev/null")
                          .c_str());
  EXPECT_EQ(rc, 0) << "cannot create a database on " << url;
  return url.substr(0, url.rfind('/') + 1) + name;
}

int64_t ms_of(const std::string& iso) {
  std::tm tm{};
  strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return static_cast<int64_t>(timegm(&tm)) * 1000 + std::stoi(iso.substr(20, 3));
}

} // namespace

TEST(CoordinatorsOnPostgres, ThreeCoordinatorsOneKilledLaunchEachDueTickExactlyOnce) {
  temp_dir tmp;
  auto db = fresh_database();
  auto pipes = tmp.path() + "/pipes";
  ::mkdir(pipes.c_str(), 0755);
  std::ofstream(pipes + "/tick.yaml") << "name: tick\nstages:\n  - name: t\n    shell: \"true\"\n";
  std::vector<std::unique_ptr<coordinator_process>> cs;
  // The one that will be killed holds each claim for 1.5 s before it writes
  // its launches (a fault-injection knob), so that the kill lands inside a
  // claim and another coordinator must take it over when its lease expires.
  for (int i = 0; i < 3; ++i)
    cs.push_back(std::make_unique<coordinator_process>(
      std::vector<std::string>{"--pipelines", pipes, "-o", tmp.path() + "/out" + std::to_string(i),
                               "--db", db, "--lease", "2s", "--id", "c" + std::to_string(i)},
      tmp.path(),
      i == 0 ? std::vector<std::string>{"TROUPE_FAULT_CLAIM_DELAY=1500ms"}
             : std::vector<std::string>{}));
  // Two schedules, each created through a different coordinator.
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto r = cs[static_cast<size_t>(i)]->client()->Post(
      "/api/schedules", R"({"pipeline": "tick", "kind": "interval", "every": "1s"})",
      "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
    ids.push_back(body_json(r)["id"].get<std::string>());
  }
  std::this_thread::sleep_for(2000ms);
  // c0 dies while it holds a claim (seen through another coordinator).
  auto watcher = cs[1]->client();
  bool holding = cs[1]->process().wait_until(
    [&] {
      auto all = body_json(watcher->Get("/api/schedules"));
      for (auto& s : all["schedules"])
        if (s["claimed_by"] == "c0")
          return true;
      return false;
    },
    15s);
  ASSERT_TRUE(holding) << "c0 never held a claim";
  ::kill(cs[0]->pid(), SIGKILL);
  cs[0]->process().wait(10s);
  std::this_thread::sleep_for(5500ms);
  // Stop the schedules, then let the last launches settle.
  for (auto& id : ids) {
    auto r = cs[1]->client()->Patch(("/api/schedules/" + id).c_str(), R"({"enabled": false})",
                                    "application/json");
    ASSERT_EQ(r->status, 200) << r->body;
  }
  std::this_thread::sleep_for(2500ms);
  auto c = cs[1]->client();
  std::map<std::string, std::vector<int64_t>> ticks;
  std::map<std::string, int> launched_events;
  for (auto& id : ids) {
    auto s = body_json(c->Get(("/api/schedules/" + id).c_str()));
    for (auto& e : s["events"])
      if (e["kind"] == "launched" || e["kind"] == "caught_up")
        ++launched_events[id];
  }
  // From the runs table, read by the CLI from the database itself.
  auto listed = run_troupe({"runs", "--db", db, "--json", "-n", "1000"}, tmp.path());
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  auto runs = json::parse(listed.out)["runs"];
  std::map<std::string, std::set<std::string>> owners;
  for (auto& r : runs) {
    ASSERT_TRUE(r["schedule_id"].is_string()) << r.dump();
    ticks[r["schedule_id"].get<std::string>()].push_back(ms_of(r["scheduled_for"]));
  }
  for (auto& id : ids) {
    auto& t = ticks[id];
    std::sort(t.begin(), t.end());
    ASSERT_GE(t.size(), 5u) << "several seconds of a 1 s schedule";
    // Every tick once: consecutive, one second apart, no gap, no repeat.
    for (size_t k = 1; k < t.size(); ++k)
      EXPECT_EQ(t[k] - t[k - 1], 1000) << "schedule " << id << " tick " << k;
    EXPECT_EQ(launched_events[id], static_cast<int>(t.size()))
      << "one launch decision per run";
  }
  int takeovers = 0;
  for (auto& id : ids) {
    auto s = body_json(c->Get(("/api/schedules/" + id).c_str()));
    for (auto& e : s["events"])
      takeovers += e["kind"] == "taken_over" ? 1 : 0;
  }
  std::printf("ticks launched: %zu and %zu; takeovers on record: %d\n", ticks[ids[0]].size(),
              ticks[ids[1]].size(), takeovers);
  EXPECT_GE(takeovers, 1) << "the killed coordinator's claim was taken over";
  // Every launched run ended (the killed one's included, adopted or
  // reconciled by the others).
  auto deadline = std::chrono::steady_clock::now() + 30s;
  int unfinished = 0;
  do {
    auto again = json::parse(run_troupe({"runs", "--db", db, "--json", "-n", "1000"}, tmp.path()).out);
    unfinished = 0;
    for (auto& r : again["runs"])
      unfinished += r["status"] == "queued" || r["status"] == "running" ? 1 : 0;
    if (unfinished == 0)
      break;
    std::this_thread::sleep_for(500ms);
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(unfinished, 0);
}
