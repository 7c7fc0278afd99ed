// `troupe run --db postgresql://…` end to end against the real PostgreSQL
// server of the ctest fixture (tests/support/pg_server.sh): a retried stage,
// the CLI reading it back, and kill -9 then reconciliation at the next start.
// The server is shared by the pg tests, so each test names its pipeline
// uniquely and reads only its own runs.
#include "tests/support/pg_url.hpp"
#include "tests/support/troupe_process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>

using namespace troupe::test;
using nlohmann::json;

namespace {

std::string unique_name(const std::string& stem) {
  std::random_device rd;
  return stem + "-" + std::to_string(rd()) + std::to_string(::getpid());
}

json runs_of(const temp_dir& dir, const std::string& pipeline) {
  auto r = run_troupe({"runs", "--db", pg_url(), "--json", "--pipeline", pipeline}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out)["runs"];
}

json show(const temp_dir& dir, const std::string& id) {
  auto r = run_troupe({"show", "--db", pg_url(), "--json", id}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

std::string event_text(const temp_dir& dir, const std::string& id) {
  auto r = run_troupe({"events", "--db", pg_url(), "--json", id}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::string all;
  auto doc = json::parse(r.out);  // kept: a range-for over a temporary's member dangles
  for (auto& e : doc["events"])
    all += e["message"].get<std::string>() + "\n";
  return all;
}

} // namespace

TEST(DurableRunsPostgres, ARetriedStageIsRecordedAndReadBack) {
  temp_dir dir;
  auto name = unique_name("pg-retry");
  auto marker = dir.path() + "/failed-once";
  auto pipe = dir.write("retry.yaml", "name: " + name + R"(
stages:
  - name: flaky
    shell: "if [ -e )" + marker + R"( ]; then echo fine; exit 0; fi; touch )" + marker
                                           + R"(; exit 3"
    retry: { max_attempts: 2, backoff: { initial: 100ms }, on: [exit_nonzero] }
)");
  auto r = run_troupe({"run", pipe, "-o", dir.path() + "/out", "--db", pg_url()}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(exists(dir.path() + "/out/troupe.db")) << "--db replaces the embedded default";
  auto runs = runs_of(dir, name);
  ASSERT_EQ(runs.size(), 1u);
  auto run = show(dir, runs[0]["run_id"]);
  EXPECT_EQ(run["status"], "succeeded");
  auto flaky = job_of(run, "flaky");
  ASSERT_EQ(flaky["attempts"].size(), 2u);
  EXPECT_EQ(flaky["attempts"][0]["failure_code"], "exit_nonzero");
  EXPECT_EQ(flaky["attempts"][0]["exit_code"], 3);
  EXPECT_EQ(flaky["attempts"][1]["status"], "succeeded");
  auto events = event_text(dir, runs[0]["run_id"]);
  EXPECT_NE(events.find("retry scheduled"), std::string::npos) << events;
}

TEST(DurableRunsPostgres, AKilledRunnerIsReconciledAtTheNextStart) {
  temp_dir dir;
  auto name = unique_name("pg-killed");
  auto pipe = dir.write("long.yaml", "name: " + name + R"(
stages:
  - name: sleeper
    shell: "echo started; sleep 30"
)");
  auto out = dir.path() + "/out";
  {
    troupe_process p({"run", pipe, "-o", out, "--db", pg_url()}, dir.path());
    ASSERT_TRUE(p.wait_until(
      [&] {
        auto runs = runs_of(dir, name);
        if (runs.empty())
          return false;
        auto run = show(dir, runs[0]["run_id"]);
        auto attempts = job_of(run, "sleeper")["attempts"];
        return !attempts.empty() && attempts[0]["pid"].get<int>() > 0;
      },
      std::chrono::seconds(20)));
    ::kill(p.pid(), SIGKILL);
    p.wait();
  }
  auto id = runs_of(dir, name)[0]["run_id"].get<std::string>();
  auto before = show(dir, id);
  EXPECT_EQ(before["status"], "running");
  auto sleeper_pid = job_of(before, "sleeper")["attempts"][0]["pid"].get<int>();

  auto other = dir.write("quick.yaml", "name: " + unique_name("pg-quick")
                                         + "\nstages:\n  - name: a\n    shell: \"true\"\n");
  auto r = run_troupe({"run", other, "-o", out, "--db", pg_url()}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("recovery: run " + id + " failed"), std::string::npos) << r.err;
  auto after = show(dir, id);
  EXPECT_EQ(after["status"], "failed");
  EXPECT_EQ(after["failure_code"], "interrupted");
  EXPECT_EQ(job_of(after, "sleeper")["attempts"][0]["failure_code"], "interrupted");
  bool gone = false;
  for (int k = 0; k < 100 && !gone; ++k) {
    gone = ::kill(sleeper_pid, 0) != 0;
    troupe_process::sleep_ms(20);
  }
  EXPECT_TRUE(gone) << "the leftover stage process was killed";
  auto events = event_text(dir, id);
  EXPECT_NE(events.find("run failed: interrupted"), std::string::npos) << events;
}
