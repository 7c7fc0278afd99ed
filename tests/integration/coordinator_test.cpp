// The coordinator as a user meets it: a real `troupe coordinator` process,
// real HTTP on loopback, real stage processes and the real SQLite store.
// What the API says is checked against the store (`troupe show --json`),
// the run folders and the test's own clock.
#include "tests/support/coordinator_process.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <set>
#include <regex>
#include <sstream>
#include <thread>

using namespace troupe::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

struct CoordinatorTest : ::testing::Test {
  temp_dir tmp;
  std::string pipes() {
    return tmp.path() + "/pipes";
  }
  std::string out() {
    return tmp.path() + "/out";
  }
  void SetUp() override {
    ::mkdir(pipes().c_str(), 0755);
    pipe("quick", "  - name: hello\n    shell: \"echo hello; echo to-stderr >&2\"\n");
    pipe("counting",
         "  - name: count\n    shell: \"for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done\"\n");
    pipe("slow", "  - name: wait\n    shell: \"sleep 30\"\n");
    pipe("flaky",
         "  - name: shaky\n    shell: \"echo try $TROUPE_ATTEMPT; test $TROUPE_ATTEMPT -ge 3\"\n"
         "    retry: {max_attempts: 3, backoff: {initial: 100ms}, on: [exit_nonzero]}\n"
         "  - name: extra\n    optional: true\n    shell: \"echo extra $GREETING\"\n");
  }
  void pipe(const std::string& name, const std::string& stages) {
    std::ofstream(pipes() + "/" + name + ".yaml")
      << "name: " << name << "\n" << (name == "flaky" ? "api_env: [GREETING]\n" : "")
      << "stages:\n" << stages;
  }
  std::vector<std::string> base_args() {
    return {"--pipelines", pipes(), "-o", out()};
  }
  static json launch(httplib::Client& c, const json& body) {
    auto r = c.Post("/api/runs", body.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r)
      return nullptr;
    EXPECT_EQ(r->status, 201) << r->body;
    return body_json(r);
  }
  static json wait_ended(httplib::Client& c, const std::string& id,
                         std::chrono::seconds limit = 60s) {
    return wait_run_ended(c, id, limit);
  }
  static std::string error_code(const httplib::Result& r) {
    auto j = body_json(r);
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
  }
  static std::string error_message(const httplib::Result& r) {
    auto j = body_json(r);
    return j.is_object() && j.contains("error") ? j["error"].value("message", "") : "";
  }
};

int64_t ms_of(const std::string& iso) {
  // 2026-11-24T09:00:12.446Z
  std::tm tm{};
  strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return static_cast<int64_t>(timegm(&tm)) * 1000 + std::stoi(iso.substr(20, 3));
}

int thread_count(pid_t pid) {
  int n = 0;
  if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/task").c_str())) {
    while (auto* e = ::readdir(d))
      n += e->d_name[0] != '.' ? 1 : 0;
    ::closedir(d);
  }
  return n;
}

} // namespace

TEST_F(CoordinatorTest, EveryEndpointAnswersAsDocumented) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  auto health = c->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(c->Get("/ready")->status, 200);
  auto pipes_list = body_json(c->Get("/api/pipelines"));
  std::set<std::string> names;
  for (auto& p : pipes_list["pipelines"])
    names.insert(p["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"counting", "flaky", "quick", "slow"}));

  // Launch: 201, Location, queued; the run exists in the store at once.
  auto r = c->Post("/api/runs", R"({"pipeline": "flaky", "enable": ["extra"],
                                   "env": {"GREETING": "hi there"}})",
                   "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  auto made = body_json(r);
  auto id = made["id"].get<std::string>();
  EXPECT_EQ(r->get_header_value("Location"), "/api/runs/" + id);
  EXPECT_EQ(made["pipeline"], "flaky");
  EXPECT_FALSE(made["created_at"].get<std::string>().empty());
  auto run = wait_ended(*c, id);
  EXPECT_EQ(run["status"], "succeeded") << run.dump(2);
  ASSERT_EQ(run["jobs"].size(), 2u);
  EXPECT_EQ(run["jobs"][0]["attempts"].size(), 3u) << "two retries, from the store";
  EXPECT_EQ(run["jobs"][0]["node"], run["jobs"][1]["node"]);
  EXPECT_EQ(run["jobs"][0]["max_attempts"], 3);
  // The env and the optional stage reached the stage (its own log says so).
  auto extra = c->Get(("/api/runs/" + id + "/logs/extra").c_str());
  ASSERT_TRUE(extra);
  EXPECT_EQ(extra->status, 200);
  EXPECT_EQ(extra->body, "extra hi there\n");
  // Logs: by attempt, from an offset; the bytes are the file's.
  auto first = c->Get(("/api/runs/" + id + "/logs/shaky?attempt=1").c_str());
  EXPECT_EQ(first->body, "try 1\n");
  auto latest = c->Get(("/api/runs/" + id + "/logs/shaky").c_str());
  EXPECT_EQ(latest->body, "try 3\n");
  EXPECT_EQ(latest->get_header_value("X-Troupe-Attempt"), "3");
  auto tail = c->Get(("/api/runs/" + id + "/logs/shaky?attempt=2&offset=4").c_str());
  EXPECT_EQ(tail->body, "2\n");
  auto file = read_file(run["run_dir"].get<std::string>() + "/logs/shaky.attempt-2.stdout.log");
  EXPECT_EQ(file, "try 2\n");
  // Events: all, then after an id, then a page.
  auto all = body_json(c->Get(("/api/runs/" + id + "/events").c_str()))["events"];
  ASSERT_GE(all.size(), 8u);
  auto second_id = all[1]["id"].get<int64_t>();
  auto after = body_json(c->Get(("/api/runs/" + id + "/events?after=" + std::to_string(second_id)
                                 + "&limit=2")
                                  .c_str()))["events"];
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0]["id"], all[2]["id"]);

  // Listing with a cursor: two more runs, pages of two.
  auto id2 = launch(*c, {{"pipeline", "quick"}})["id"].get<std::string>();
  auto id3 = launch(*c, {{"pipeline", "quick"}})["id"].get<std::string>();
  wait_ended(*c, id2);
  wait_ended(*c, id3);
  auto page1 = body_json(c->Get("/api/runs?limit=2"));
  ASSERT_EQ(page1["runs"].size(), 2u);
  EXPECT_EQ(page1["runs"][0]["run_id"], id3);
  ASSERT_TRUE(page1["next_cursor"].is_string());
  auto page2 = body_json(c->Get(("/api/runs?limit=2&cursor="
                                 + page1["next_cursor"].get<std::string>())
                                  .c_str()));
  ASSERT_EQ(page2["runs"].size(), 1u);
  EXPECT_EQ(page2["runs"][0]["run_id"], id);
  EXPECT_TRUE(page2["next_cursor"].is_null());
  auto filtered = body_json(c->Get("/api/runs?pipeline=flaky&status=succeeded"));
  ASSERT_EQ(filtered["runs"].size(), 1u);

  // Cancel: a running run 202, then cancelled; again 409.
  auto slow = launch(*c, {{"pipeline", "slow"}})["id"].get<std::string>();
  auto cancel = c->Post(("/api/runs/" + slow + "/cancel").c_str(), "", "application/json");
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->status, 202) << cancel->body;
  auto cancelled = wait_ended(*c, slow, 20s);
  EXPECT_EQ(cancelled["status"], "cancelled");
  auto again = c->Post(("/api/runs/" + slow + "/cancel").c_str(), "", "application/json");
  EXPECT_EQ(again->status, 409);
  EXPECT_EQ(error_code(again), "conflict");

  // 404s, each naming what is missing.
  auto nope = c->Get("/api/runs/no-such-run");
  EXPECT_EQ(nope->status, 404);
  EXPECT_NE(error_message(nope).find("no-such-run"), std::string::npos);
  EXPECT_EQ(c->Get(("/api/runs/" + id + "/logs/nostage").c_str())->status, 404);
  EXPECT_EQ(c->Get(("/api/runs/" + id + "/logs/shaky?attempt=9").c_str())->status, 404);
  EXPECT_EQ(c->Post("/api/runs/no-such-run/cancel", "", "application/json")->status, 404);
  EXPECT_EQ(c->Get("/api/schedules/sch-nope")->status, 404);
  auto unknown = c->Post("/api/runs", R"({"pipeline": "absent"})", "application/json");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_NE(error_message(unknown).find("absent"), std::string::npos);
  EXPECT_EQ(c->Get("/api/nothing-here")->status, 404);

  // 400s name the field.
  struct bad {
    std::string body;
    std::string names;
  };
  for (auto& b : std::vector<bad>{{"{not json", "body"},
                                  {"[1, 2]", "body"},
                                  {R"({"pipeline": "quick", "colour": "red"})", "colour"},
                                  {R"({"pipeline": 7})", "pipeline"},
                                  {R"({"pipeline": "quick", "priority": "high"})", "priority"},
                                  {R"({"pipeline": "quick", "env": {"1BAD": "x"}})", "env"},
                                  {R"({"pipeline": "quick", "env": {"TROUPE_RUN_ID": "x"}})", "env"},
                                  {R"({"pipeline": "quick", "env": {"GREETING": "x"}})", "env.GREETING"},
                                  {R"({"pipeline": "flaky", "env": {"LD_PRELOAD": "/x.so"}})", "env.LD_PRELOAD"},
                                  {R"({"pipeline": "flaky", "env": {"PATH": "/tmp"}})", "env.PATH"},
                                  {R"({"pipeline": "flaky", "env": {"BASH_ENV": "/x"}})", "env.BASH_ENV"},
                                  {R"({"pipeline": "flaky", "env": {"TROUPE_TOKEN": "x"}})", "env.TROUPE_TOKEN"},
                                  {R"({"pipeline": "flaky", "enable": ["shaky"]})", "enable"},
                                  {R"({"pipeline": "flaky", "enable": ["ghost"]})", "enable"}}) {
    auto res = c->Post("/api/runs", b.body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << b.body;
    EXPECT_EQ(error_code(res), "bad_request") << b.body;
    EXPECT_EQ(error_message(res).rfind(b.names, 0), 0u) << b.body << " -> " << res->body;
  }
  EXPECT_EQ(c->Get("/api/runs?status=great")->status, 400);
  EXPECT_EQ(c->Get("/api/runs?limit=0")->status, 400);
  EXPECT_EQ(c->Get(("/api/runs/" + id + "/logs/shaky?stream=stdin").c_str())->status, 400);
  EXPECT_EQ(c->Get(("/api/runs/" + id + "/logs/shaky?offset=-1").c_str())->status, 400);
  // 413 over 1 MiB, before the body is looked at.
  std::string big = R"({"pipeline": "quick", "pad": ")" + std::string(1100000, 'x') + "\"}";
  auto huge = c->Post("/api/runs", big, "application/json");
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
  EXPECT_EQ(error_code(huge), "payload_too_large");
  // No request reaches a file outside the run's logs: `..` and encoded
  // slashes in a stage name are not a stage.
  for (auto path : {"/logs/..", "/logs/..%2F..%2Fmetadata.json", "/logs/%2E%2E",
                    "/logs/shaky%2F..%2F..%2Fmetadata.json", "/logs/..%2f..%2f..%2fetc%2fpasswd"}) {
    auto res = c->Get(("/api/runs/" + id + path).c_str());
    ASSERT_TRUE(res);
    EXPECT_TRUE(res->status == 404 || res->status == 400) << path << " " << res->status;
    EXPECT_EQ(res->body.find("root:"), std::string::npos) << path;
    EXPECT_EQ(res->body.find("\"run_id\""), std::string::npos) << path;
  }
  // Nothing was created by the refused launches: the store has what the
  // test launched and no more.
  auto listed = body_json(c->Get("/api/runs?limit=100"));
  EXPECT_EQ(listed["runs"].size(), 4u);
}

TEST_F(CoordinatorTest, AFollowedLogStreamsWhileTheStageRunsAndEndsWithIt) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  auto id = launch(*c, {{"pipeline", "counting"}})["id"].get<std::string>();
  std::string got;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  auto t0 = std::chrono::steady_clock::now();
  auto res = c->Get(("/api/runs/" + id + "/logs/count?follow=1").c_str(),
                    [&](const char* data, size_t n) {
                      got.append(data, n);
                      arrivals.push_back(std::chrono::steady_clock::now());
                      return true;
                    });
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(got, "line 1\nline 2\nline 3\nline 4\nline 5\n");
  ASSERT_GE(arrivals.size(), 3u) << "bytes came as they were written, not at the end";
  EXPECT_GE(arrivals.back() - arrivals.front(), 400ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << "the stream ended with the stage";
}

TEST_F(CoordinatorTest, ATokenIsRequiredForTheApiAndComparedWhole) {
  auto args = base_args();
  args.insert(args.end(), {"--token", "s3cret-token"});
  coordinator_process co(args, tmp.path());
  EXPECT_EQ(co.client()->Get("/health")->status, 200) << "health needs no token";
  auto none = co.client()->Get("/api/pipelines");
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(error_code(none), "unauthorized");
  EXPECT_EQ(co.client("wrong")->Get("/api/pipelines")->status, 401);
  EXPECT_EQ(co.client("s3cret-toke")->Get("/api/pipelines")->status, 401);
  EXPECT_EQ(co.client("s3cret-token-and-more")->Get("/api/pipelines")->status, 401);
  EXPECT_EQ(co.client("s3cret-token")->Get("/api/pipelines")->status, 200);
  auto denied = co.client()->Post("/api/runs", R"({"pipeline": "quick"})", "application/json");
  EXPECT_EQ(denied->status, 401);
  EXPECT_EQ(co.client("s3cret-token")->Get("/api/runs")->status, 200);
  EXPECT_EQ(body_json(co.client("s3cret-token")->Get("/api/runs"))["runs"].size(), 0u)
    << "the refused launch left nothing";
}

TEST_F(CoordinatorTest, TheEventStreamGivesEveryEventOnceAcrossAReconnect) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  auto id = launch(*c, {{"pipeline", "flaky"}})["id"].get<std::string>();
  auto path = "/api/runs/" + id + "/events/stream";
  // First connection: take two events, then hang up.
  std::vector<int64_t> seen;
  std::string buf;
  auto take = [&](size_t at_most, bool& ended) {
    return [&, at_most](const char* data, size_t n) {
      buf.append(data, n);
      size_t end;
      while ((end = buf.find("\n\n")) != std::string::npos) {
        auto frame = buf.substr(0, end);
        buf.erase(0, end + 2);
        if (frame.find("event: end") != std::string::npos) {
          ended = true;
          continue;
        }
        auto idl = frame.find("id: ");
        if (idl != std::string::npos)
          seen.push_back(std::stoll(frame.substr(idl + 4)));
        if (seen.size() >= at_most)
          return false;
      }
      return true;
    };
  };
  bool ended = false;
  c->Get(path.c_str(), take(2, ended));
  ASSERT_EQ(seen.size(), 2u);
  ASSERT_FALSE(ended);
  // Reconnect where it left off.
  buf.clear();
  httplib::Headers h{{"Last-Event-ID", std::to_string(seen.back())}};
  auto res = co.client()->Get(path.c_str(), h, take(100000, ended));
  ASSERT_TRUE(res);
  EXPECT_TRUE(ended) << "the stream ends when the run has ended";
  auto all = body_json(c->Get(("/api/runs/" + id + "/events").c_str()))["events"];
  std::vector<int64_t> stored;
  for (auto& e : all)
    stored.push_back(e["id"].get<int64_t>());
  EXPECT_EQ(seen, stored) << "every event once, in order";
  EXPECT_EQ(c->Get("/api/runs/nope/events/stream")->status, 404);
  // The header and the query go through one parser: past 64 bits, signs
  // and junk are 400 naming the field, either way.
  for (std::string bad : {"99999999999999999999999", "-1", "+3", "3x"}) {
    auto q = c->Get((path + "?after=" + httplib::detail::encode_query_param(bad)).c_str());
    EXPECT_EQ(q->status, 400) << "after=" << bad;
    EXPECT_EQ(error_message(q).rfind("after", 0), 0u) << q->body;
    auto hd = c->Get(path.c_str(), httplib::Headers{{"Last-Event-ID", bad}});
    EXPECT_EQ(hd->status, 400) << "Last-Event-ID: " << bad;
    EXPECT_EQ(error_message(hd).rfind("Last-Event-ID", 0), 0u) << hd->body;
  }
}

TEST_F(CoordinatorTest, FiftyLaunchesUnderMaxRunningFourNeverRunMoreThanFour) {
  pipe("nap", "  - name: nap\n    shell: \"sleep 0.2\"\n");
  auto args = base_args();
  args.insert(args.end(), {"--max-running", "4"});
  coordinator_process co(args, tmp.path());
  std::vector<std::string> ids(50);
  std::vector<std::thread> launchers;
  for (int t = 0; t < 5; ++t)
    launchers.emplace_back([&, t] {
      auto c = co.client();
      for (int i = t; i < 50; i += 5)
        ids[static_cast<size_t>(i)] = launch(*c, {{"pipeline", "nap"}})["id"].get<std::string>();
    });
  for (auto& t : launchers)
    t.join();
  auto c = co.client();
  std::vector<std::pair<int64_t, int>> edges;  // (ms, +1 start / -1 end)
  for (auto& id : ids) {
    auto run = wait_ended(*c, id, 120s);
    EXPECT_EQ(run["status"], "succeeded") << id;
    auto& a = run["jobs"][0]["attempts"][0];
    edges.emplace_back(ms_of(a["started_at"]), +1);
    edges.emplace_back(ms_of(a["finished_at"]), -1);
  }
  std::sort(edges.begin(), edges.end(), [](auto& x, auto& y) {
    return x.first != y.first ? x.first < y.first : x.second < y.second;  // ends first
  });
  int now = 0, most = 0;
  for (auto& [t, d] : edges) {
    now += d;
    most = std::max(most, now);
  }
  EXPECT_LE(most, 4) << "never more than --max-running";
  EXPECT_EQ(most, 4) << "and the limit was used";
}

TEST_F(CoordinatorTest, ALaunchedRunStartsAtOnceWithoutAPollingInterval) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  int64_t worst = 0;
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto id = launch(*c, {{"pipeline", "quick"}})["id"].get<std::string>();
    auto answered = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(answered, 1s);
    auto run = wait_ended(*c, id);
    auto& a = run["jobs"][0]["attempts"][0];
    worst = std::max(worst, ms_of(a["started_at"]) - ms_of(run["created_at"]));
  }
  // The schedule loop sleeps up to 1 s; a launch does not wait for it.
  EXPECT_LT(worst, 500) << "created -> first stage started, ms";
}

TEST_F(CoordinatorTest, ACoordinatorKilledWithRunsInFlightEndsEachRunOnceAfterARestart) {
  pipe("short", "  - name: nap\n    shell: \"sleep 1\"\n");
  // Resumable: its second stage's first attempt waits forever; a second
  // attempt finds the marker and succeeds.
  std::ofstream(pipes() + "/again.yaml")
    << "name: again\nresume: true\nstages:\n  - name: first\n    shell: \"echo one\"\n"
       "  - name: second\n    shell: \"test -f $TROUPE_RUN_DIR/marker || "
       "{ touch $TROUPE_RUN_DIR/marker; sleep 30; }\"\n";
  auto args = base_args();
  args.insert(args.end(), {"--max-running", "3"});
  std::vector<std::string> running, queued;
  std::string resumable;
  {
    coordinator_process first(args, tmp.path());
    auto c = first.client();
    for (int i = 0; i < 2; ++i)
      running.push_back(launch(*c, {{"pipeline", "slow"}})["id"].get<std::string>());
    resumable = launch(*c, {{"pipeline", "again"}})["id"].get<std::string>();
    for (int i = 0; i < 2; ++i)
      queued.push_back(launch(*c, {{"pipeline", "short"}})["id"].get<std::string>());
    // The slow ones and the resumable one run (its second stage), the short
    // ones wait for a slot.
    ASSERT_TRUE(first.process().wait_until(
      [&] {
        auto r = body_json(c->Get("/api/runs?status=running"));
        auto a = body_json(c->Get(("/api/runs/" + resumable).c_str()));
        return r.is_object() && r["runs"].size() == 3 && a["jobs"][1]["status"] == "running";
      },
      10s));
    ::kill(first.pid(), SIGKILL);
    first.process().wait(10s);
  }
  coordinator_process second(base_args(), tmp.path());
  auto c = second.client();
  for (auto& id : running) {
    auto run = wait_ended(*c, id, 30s);
    EXPECT_EQ(run["status"], "failed") << id;
    EXPECT_EQ(run["failure_code"], "interrupted") << run.dump(2);
  }
  for (auto& id : queued) {
    auto run = wait_ended(*c, id, 30s);
    EXPECT_EQ(run["status"], "succeeded") << "a queued run is taken over and run: " << run.dump(2);
  }
  // resume: true: the same run goes on here; its interrupted stage gets a
  // second attempt, the finished one is not run again.
  auto resumed = wait_ended(*c, resumable, 30s);
  EXPECT_EQ(resumed["status"], "succeeded") << resumed.dump(2);
  EXPECT_EQ(resumed["jobs"][0]["attempts"].size(), 1u);
  ASSERT_EQ(resumed["jobs"][1]["attempts"].size(), 2u) << resumed.dump(2);
  EXPECT_EQ(resumed["jobs"][1]["attempts"][0]["failure_code"], "interrupted");
  EXPECT_NE(second.log().find("run " + resumable + " resumed here"), std::string::npos);
  // Each run ended once: one terminal run event each.
  for (auto& id : running) {
    auto events = body_json(c->Get(("/api/runs/" + id + "/events").c_str()))["events"];
    int ends = 0;
    for (auto& e : events)
      ends += e["job"].is_null() && e["message"].get<std::string>().rfind("run failed", 0) == 0;
    EXPECT_LE(ends, 1) << id;
  }
  // No stage process of those runs is left (the slow ones were killed).
  auto left = std::system(("pgrep -f 'sleep 30' -P 1 >/dev/null 2>&1"));
  (void) left;
  for (auto& id : running) {
    auto found = std::system(("grep -l 'TROUPE_RUN_ID=" + id
                              + "' /proc/[0-9]*/environ >/dev/null 2>&1")
                               .c_str());
    EXPECT_NE(found, 0) << "a process of run " << id << " is still there";
  }
  EXPECT_NE(second.log().find("whose process is lost; started here"), std::string::npos)
    << second.log();
}

TEST_F(CoordinatorTest, TwoHundredConcurrentRunsSucceedWithABoundedThreadCount) {
  pipe("sleepy", "  - name: nap\n    shell: \"sleep 2\"\n");
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  // Idle: once its HTTP server's thread pool is up.
  ASSERT_EQ(c->Get("/health")->status, 200);
  std::this_thread::sleep_for(200ms);
  int before = thread_count(co.pid());
  std::vector<std::string> ids(200);
  std::vector<std::thread> launchers;
  for (int t = 0; t < 4; ++t)
    launchers.emplace_back([&, t] {
      auto cl = co.client();
      for (int i = t; i < 200; i += 4)
        ids[static_cast<size_t>(i)] = launch(*cl, {{"pipeline", "sleepy"}})["id"].get<std::string>();
    });
  int most = before;
  std::atomic<bool> done{false};
  std::thread watch([&] {
    while (!done) {
      most = std::max(most, thread_count(co.pid()));
      std::this_thread::sleep_for(20ms);
    }
  });
  for (auto& t : launchers)
    t.join();
  int succeeded = 0;
  for (auto& id : ids)
    succeeded += wait_ended(*c, id, 120s)["status"] == "succeeded" ? 1 : 0;
  done = true;
  watch.join();
  EXPECT_EQ(succeeded, 200);
  EXPECT_LE(most, before + 12) << "threads grew with the runs (" << before << " before)";
  std::printf("coordinator threads: %d idle, at most %d with 200 runs\n", before, most);
}

TEST_F(CoordinatorTest, MetricsArePrometheusTextThatPromtoolAccepts) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  wait_ended(*c, launch(*c, {{"pipeline", "quick"}})["id"].get<std::string>());
  auto m = c->Get("/metrics");
  ASSERT_TRUE(m);
  ASSERT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("troupe_runs{status=\"succeeded\"} 1"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("troupe_launch_to_start_seconds_count 1"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("troupe_queue_depth 0"), std::string::npos);
  auto file = tmp.write("metrics.txt", m->body);
  auto rc = std::system(("promtool check metrics < '" + file + "' > '" + file + ".out' 2>&1").c_str());
  EXPECT_EQ(rc, 0) << read_file(file + ".out");
}

TEST_F(CoordinatorTest, OverlapForbidSkipsReplaceCancelsAllowOverlaps) {
  pipe("long", "  - name: nap\n    shell: \"sleep 2.5\"\n");
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  std::map<std::string, std::string> ids;
  for (auto overlap : {"forbid", "replace", "allow"}) {
    auto r = c->Post("/api/schedules",
                     json{{"pipeline", "long"}, {"kind", "interval"}, {"every", "1s"},
                          {"overlap", overlap}}
                       .dump(),
                     "application/json");
    ASSERT_EQ(r->status, 201) << r->body;
    ids[overlap] = body_json(r)["id"].get<std::string>();
  }
  std::this_thread::sleep_for(4500ms);
  for (auto& [overlap, id] : ids) {
    auto r = c->Patch(("/api/schedules/" + id).c_str(), R"({"enabled": false})",
                      "application/json");
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(body_json(r)["enabled"], false);
  }
  auto runs = body_json(c->Get("/api/runs?limit=1000"))["runs"];
  std::map<std::string, std::vector<json>> by;
  for (auto& r : runs)
    by[r["schedule_id"].get<std::string>()].push_back(r);
  // Wait for all of them to end, then look.
  for (auto& [sid, list] : by)
    for (auto& r : list)
      r = wait_ended(*c, r["run_id"].get<std::string>(), 30s);
  auto events_of = [&](const std::string& sid) {
    return body_json(c->Get(("/api/schedules/" + sid).c_str()))["events"];
  };
  auto count = [](const json& events, const std::string& kind) {
    int n = 0;
    for (auto& e : events)
      n += e["kind"] == kind ? 1 : 0;
    return n;
  };
  // forbid: one run at a time, the ticks in between skipped as events.
  auto& forbid = by[ids["forbid"]];
  ASSERT_GE(forbid.size(), 1u);
  EXPECT_LE(forbid.size(), 2u);
  for (auto& r : forbid)
    EXPECT_EQ(r["status"], "succeeded");
  EXPECT_GE(count(events_of(ids["forbid"]), "skipped"), 2);
  // replace: every new tick cancels the run before it.
  // (Ticks that come due together under load are one launch: the older
  // ones are skipped as superseded.)
  auto& replace = by[ids["replace"]];
  ASSERT_GE(replace.size(), 2u);
  int cancelled = 0;
  for (auto& r : replace) {
    if (r["status"] != "cancelled")
      continue;
    ++cancelled;
    // The reason names the schedule and its policy, once.
    auto why = r["reason"].get<std::string>();
    EXPECT_EQ(why.rfind("cancelled by schedule " + ids["replace"] + " (overlap: replace): its tick "
                        "of ", 0), 0u) << why;
    EXPECT_EQ(why.find("cancelled: cancelled"), std::string::npos) << why;
  }
  EXPECT_GE(cancelled, static_cast<int>(replace.size()) - 1);
  EXPECT_GE(count(events_of(ids["replace"]), "replaced"), static_cast<int>(replace.size()) - 1);
  // allow: every tick a run, overlapping, all succeeded.
  auto& allow = by[ids["allow"]];
  ASSERT_GE(allow.size(), 3u);
  for (auto& r : allow)
    EXPECT_EQ(r["status"], "succeeded");
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (auto& r : allow)
    spans.emplace_back(ms_of(r["started_at"]), ms_of(r["finished_at"]));
  std::sort(spans.begin(), spans.end());
  EXPECT_LT(spans[1].first, spans[0].second) << "the second began before the first ended";
  // Each tick once: scheduled_for distinct within a schedule.
  for (auto& [sid, list] : by) {
    std::set<std::string> ticks;
    for (auto& r : list)
      EXPECT_TRUE(ticks.insert(r["scheduled_for"].get<std::string>()).second) << sid;
  }
  EXPECT_EQ(c->Delete(("/api/schedules/" + ids["allow"]).c_str())->status, 204);
  EXPECT_EQ(c->Delete(("/api/schedules/" + ids["allow"]).c_str())->status, 404);
}

// /proc/net/tcp's listening sockets on `port` (state 0A), IPv4.
int listeners_on(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  int n = 0;
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string sl, local, remote, state;
    fields >> sl >> local >> remote >> state;
    if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == want)
      ++n;
  }
  return n;
}

TEST_F(CoordinatorTest, ASecondCoordinatorOnATakenPortExitsTwoBeforeTouchingItsStore) {
  coordinator_process first(base_args(), tmp.path());
  auto other = tmp.path() + "/other";
  auto second = run_troupe({"coordinator", "--pipelines", pipes(), "-o", other, "--listen",
                            "127.0.0.1:" + std::to_string(first.port())},
                           tmp.path());
  EXPECT_EQ(second.exit_code, 2) << second.out << second.err;
  EXPECT_NE(second.err.find("Address already in use"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("another coordinator?"), std::string::npos) << second.err;
  EXPECT_EQ(second.out.find("listening on"), std::string::npos) << second.out;
  EXPECT_FALSE(exists(other + "/troupe.db")) << "it failed before opening a store";
  EXPECT_EQ(listeners_on(first.port()), 1);
  EXPECT_EQ(first.client()->Get("/health")->status, 200);
}

// Ctrl-C on `launch --follow` detaches (exit 5, the run goes on) with a
// message; with --cancel-on-interrupt it cancels (exit 130).
TEST_F(CoordinatorTest, CtrlCOnAFollowDetachesOrCancelsAsAsked) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  auto follow = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"launch", "slow", "--follow", "--server", co.url()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = std::make_unique<troupe_process>(args, tmp.path());
    EXPECT_TRUE(p->wait_until(
      [&] { return read_file(p->out_path()).find("wait") != std::string::npos; }, 20s))
      << read_file(p->out_path()) << read_file(p->err_path());
    troupe_process::sleep_ms(300);
    ::kill(p->pid(), SIGINT);
    return p;
  };
  auto latest_id = [&] {
    auto runs = body_json(c->Get("/api/runs?limit=1"))["runs"];
    return runs.empty() ? std::string{} : runs[0]["run_id"].get<std::string>();
  };
  auto detached = follow({});
  auto r = detached->wait(10s);
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  auto id = latest_id();
  EXPECT_NE(r.err.find("detached; the run goes on — troupe cancel " + id), std::string::npos)
    << r.err;
  troupe_process::sleep_ms(300);
  EXPECT_EQ(body_json(c->Get(("/api/runs/" + id).c_str()))["status"], "running");
  c->Post(("/api/runs/" + id + "/cancel").c_str(), "{}", "application/json");

  auto cancelling = follow({"--cancel-on-interrupt"});
  auto rc = cancelling->wait(10s);
  EXPECT_EQ(rc.exit_code, 130) << rc.out << rc.err;
  auto second = latest_id();
  EXPECT_NE(second, id);
  EXPECT_NE(rc.err.find("cancelled run " + second), std::string::npos) << rc.err;
  auto ended = wait_ended(*c, second, 20s);
  EXPECT_EQ(ended["status"], "cancelled") << ended.dump();
  EXPECT_EQ(ended["reason"], "cancelled through the API (from 127.0.0.1)") << ended.dump();
}

// What a person types for a run through the API: a unique prefix, its
// folder's name; an ambiguous prefix is a 409 that lists the candidates.
TEST_F(CoordinatorTest, RunsAreFoundByUniquePrefixOrFolderNameAndAmbiguityListsThem) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(launch(*c, {{"pipeline", "quick"}})["id"].get<std::string>());
  for (auto& id : ids)
    wait_ended(*c, id);
  auto common = [](const std::string& a, const std::string& b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n])
      ++n;
    return n;
  };
  size_t shared = std::max(common(ids[0], ids[1]), common(ids[0], ids[2]));
  ASSERT_GE(shared, 8u) << "ids made together share their start: " << ids[0] << " " << ids[1];
  auto amb = c->Get(("/api/runs/" + ids[0].substr(0, common(ids[0], ids[1]))).c_str());
  EXPECT_EQ(amb->status, 409) << amb->body;
  EXPECT_EQ(error_code(amb), "ambiguous");
  EXPECT_NE(error_message(amb).find(ids[0]), std::string::npos) << amb->body;
  EXPECT_NE(error_message(amb).find(ids[1]), std::string::npos) << amb->body;
  auto unique = ids[0].substr(0, shared + 1);
  auto one = body_json(c->Get(("/api/runs/" + unique).c_str()));
  EXPECT_EQ(one["run_id"], ids[0]) << one.dump();
  auto logs = c->Get(("/api/runs/" + unique + "/logs/hello").c_str());
  EXPECT_EQ(logs->status, 200);
  EXPECT_EQ(logs->body, "hello\n");
  EXPECT_EQ(body_json(c->Get(("/api/runs/" + unique + "/events").c_str()))["events"].size(),
            body_json(c->Get(("/api/runs/" + ids[0] + "/events").c_str()))["events"].size());
  auto folder = one["run_dir"].get<std::string>();
  folder = folder.substr(folder.rfind('/') + 1);
  EXPECT_EQ(body_json(c->Get(("/api/runs/" + folder).c_str()))["run_id"], ids[0]) << folder;
  EXPECT_EQ(c->Get("/api/runs/ffffffff-nope")->status, 404);
  // The CLI through the server takes the same.
  auto shown = run_troupe({"show", unique, "--server", co.url()}, tmp.path());
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find(ids[0]), std::string::npos) << shown.out;
  // `troupe runs` shows each id in its shortest unique form (at least 8
  // characters), locally and through the API alike; each one resolves.
  for (std::vector<std::string> where : {std::vector<std::string>{"--server", co.url()},
                                         std::vector<std::string>{"-o", out()}}) {
    auto args = std::vector<std::string>{"runs"};
    args.insert(args.end(), where.begin(), where.end());
    auto table = run_troupe(args, tmp.path()).out;
    std::istringstream lines(table);
    std::string line;
    std::getline(lines, line);  // the header
    EXPECT_NE(line.find("BY"), std::string::npos) << line;
    int rows = 0;
    while (std::getline(lines, line)) {
      auto shortest = line.substr(0, line.find(' '));
      if (shortest.empty())
        continue;
      ++rows;
      EXPECT_GE(shortest.size(), 8u);
      EXPECT_LT(shortest.size(), ids[0].size()) << table;
      auto found = body_json(c->Get(("/api/runs/" + shortest).c_str()));
      EXPECT_EQ(found["id"].get<std::string>().rfind(shortest, 0), 0u) << shortest;
    }
    EXPECT_EQ(rows, 3) << table;
  }
}

// A client learns what a pipeline needs before launching it.
TEST_F(CoordinatorTest, PipelinesListTheirParamsStagesApiEnvAndSchedules) {
  std::ofstream(pipes() + "/paramed.yaml")
    << "name: paramed\ndescription: reads rows\napi_env: [BATCH]\n"
       "params:\n  date: { default: today }\n  limit: { required: true, description: rows to read }\n"
       "stages:\n  - name: fetch\n    shell: \"echo ${params.date} ${params.limit}\"\n"
       "  - name: extra\n    optional: true\n    shell: \"true\"\n";
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  auto made = c->Post("/api/schedules",
                      R"({"pipeline": "paramed", "kind": "cron", "cron": "@daily", "params": {"limit": "5"}})",
                      "application/json");
  ASSERT_EQ(made->status, 201) << made->body;
  json mine;
  auto listed = body_json(c->Get("/api/pipelines"));
  for (auto& p : listed["pipelines"])
    if (p["name"] == "paramed")
      mine = p;
  ASSERT_TRUE(mine.is_object());
  EXPECT_EQ(mine["params"], json::parse(R"([
    {"name": "date", "required": false, "default": "today", "description": ""},
    {"name": "limit", "required": true, "default": null, "description": "rows to read"}])"));
  EXPECT_EQ(mine["api_env"], json::parse(R"(["BATCH"])"));
  ASSERT_EQ(mine["stages"].size(), 2u);
  EXPECT_EQ(mine["stages"][1]["optional"], true);
  ASSERT_EQ(mine["schedules"].size(), 1u);
  EXPECT_EQ(mine["schedules"][0]["id"], body_json(made)["id"]);
  auto cli = run_troupe({"pipelines", "--server", co.url()}, tmp.path());
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("paramed  reads rows\n  stages: fetch, [extra]\n"
                         "  param date (default today)\n  param limit (required): rows to read\n"
                         "  api_env: BATCH\n  schedule "),
            std::string::npos)
    << cli.out;
}

// troupe logs: one stage or every stage, --tail, --stderr, --follow; the
// same output from the local store (-o) and through the API (--server).
TEST_F(CoordinatorTest, LogsReadTheSameLocallyAndRemotelyOneStageOrAllAndFollow) {
  pipe("two", "  - name: one\n    shell: \"echo a1; echo a2; echo a3; echo err1 >&2\"\n"
              "  - name: two\n    shell: \"for i in 1 2 3; do echo b$i; sleep 0.3; done\"\n");
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  auto id = launch(*c, {{"pipeline", "two"}})["id"].get<std::string>();
  wait_ended(*c, id);
  const std::string all = "==> one (attempt 1, stdout) <==\na1\na2\na3\n\n"
                          "==> two (attempt 1, stdout) <==\nb1\nb2\nb3\n";
  for (std::vector<std::string> where : {std::vector<std::string>{"--server", co.url()},
                                         std::vector<std::string>{"-o", out()}}) {
    SCOPED_TRACE(where[0]);
    auto with = [&](std::vector<std::string> args) {
      args.insert(args.begin(), "logs");
      args.insert(args.end(), where.begin(), where.end());
      return run_troupe(args, tmp.path());
    };
    auto every = with({id});
    EXPECT_EQ(every.exit_code, 0) << every.err;
    EXPECT_EQ(every.out, all);
    EXPECT_EQ(with({id.substr(0, 20), "one", "--tail", "2"}).out, "a2\na3\n");
    EXPECT_EQ(with({id, "one", "--stream", "stderr"}).out, "err1\n");
    EXPECT_EQ(with({id, "one", "--stderr"}).out, "err1\n");
    auto nope = with({id, "nope"});
    EXPECT_EQ(nope.exit_code, 2);
    EXPECT_NE(nope.err.find("has no stage 'nope' (stages: one, two)"), std::string::npos) << nope.err;
    // --follow on a running stage ends at its end, with all of it.
    auto running = launch(*c, {{"pipeline", "two"}})["id"].get<std::string>();
    auto t0 = std::chrono::steady_clock::now();
    auto followed = with({running, "two", "--follow"});
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(followed.exit_code, 0) << followed.err;
    EXPECT_EQ(followed.out, "b1\nb2\nb3\n");
    EXPECT_GE(took, 500ms) << "it waited for the stage";
    EXPECT_EQ(body_json(c->Get(("/api/runs/" + running).c_str()))["jobs"][1]["status"],
              "succeeded");
  }
}

// docs/glossary.md's keys, in the API's JSON: a run is `id`, its stages
// `stages[].name` with `attempts[].attempt`; events name `stage`.
TEST_F(CoordinatorTest, TheApiSpeaksTheGlossary) {
  auto glossary = read_file(std::string(TROUPE_SOURCE_DIR) + "/docs/glossary.md");
  for (auto word : {"`id`", "`stages[]`", "`name`", "`attempt`", "`stage`", "`run_id`",
                    "`launched_by`"})
    EXPECT_NE(glossary.find(word), std::string::npos) << word;
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  auto made = launch(*c, {{"pipeline", "quick"}});
  auto id = made["id"].get<std::string>();
  EXPECT_EQ(made["run"]["id"], id) << made.dump();
  wait_ended(*c, id);
  auto run = body_json(c->Get(("/api/runs/" + id).c_str()));
  EXPECT_EQ(run["id"], id);
  EXPECT_EQ(run["run_id"], id) << "the documented alias";
  EXPECT_EQ(run["launched_by"], "api");
  ASSERT_EQ(run["stages"].size(), 1u) << run.dump();
  EXPECT_EQ(run["stages"][0]["name"], "hello");
  EXPECT_EQ(run["stages"][0]["attempts"][0]["attempt"], 1);
  EXPECT_EQ(run["stages"][0]["attempts"][0]["stage"], "hello");
  auto listed = body_json(c->Get("/api/runs"))["runs"];
  ASSERT_FALSE(listed.empty());
  EXPECT_EQ(listed[0]["id"], id);
  auto events = body_json(c->Get(("/api/runs/" + id + "/events").c_str()))["events"];
  bool staged = false;
  for (auto& e : events)
    staged = staged || e["stage"] == "hello";
  EXPECT_TRUE(staged) << events.dump();
}

// Each schedule command: add (conflicting timings named), show (readable,
// the last N events; --json), edit, pause, resume, delete; the API pages
// a schedule's events.
TEST_F(CoordinatorTest, ScheduleCommandsAddShowEditPauseResumeTriggerDelete) {
  coordinator_process co(base_args(), tmp.path());
  std::vector<std::string> env{"TROUPE_SERVER=" + co.url()};
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "schedule");
    return run_troupe(args, tmp.path(), env);
  };
  auto both = cli({"add", "quick", "--every", "1h", "--cron", "@daily"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("--every and --cron cannot be given together"), std::string::npos)
    << both.err;
  auto none = cli({"add", "quick"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("give its timing: --every, --cron or --at"), std::string::npos)
    << none.err;
  auto added = cli({"add", "quick", "--cron", "0 3 * * *", "--overlap", "forbid"});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  auto sid = added.out.substr(0, added.out.find('\n'));
  auto shown = cli({"show", sid});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("schedule  " + sid + "\npipeline  quick\nwhen      cron 0 3 * * *\n"
                           "enabled   yes\noverlap   forbid\n"),
            std::string::npos)
    << shown.out;
  EXPECT_NE(shown.out.find("T03:00:00.000Z"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("created    created; first tick"), std::string::npos) << shown.out;
  auto edited = cli({"edit", sid, "--cron", "30 4 * * *", "--overlap", "replace"});
  EXPECT_EQ(edited.exit_code, 0) << edited.err;
  EXPECT_NE(edited.out.find("T04:30:00.000Z"), std::string::npos) << edited.out;
  auto wrong = cli({"edit", sid, "--every", "5m"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("every: does not apply to a 'cron' schedule"), std::string::npos)
    << wrong.err;
  EXPECT_EQ(cli({"edit", sid}).exit_code, 2) << "nothing to change";
  auto paused = cli({"pause", sid});
  EXPECT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_NE(paused.out.find("paused"), std::string::npos);
  EXPECT_NE(cli({"show", sid}).out.find("enabled   no (paused)"), std::string::npos);
  EXPECT_NE(cli({"resume", sid}).out.find("resumed; next run at"), std::string::npos);
  auto last = cli({"show", sid, "--last", "1"});
  EXPECT_NE(last.out.find("last 1 of "), std::string::npos) << last.out;
  auto as_json = json::parse(cli({"show", sid, "--json"}).out);
  EXPECT_EQ(as_json["overlap"], "replace");
  EXPECT_GE(as_json["events"].size(), 4u) << as_json.dump();
  // The API pages the events.
  auto c = co.client();
  auto page = body_json(c->Get(("/api/schedules/" + sid + "?limit=2").c_str()));
  ASSERT_EQ(page["events"].size(), 2u);
  ASSERT_TRUE(page["next_after"].is_number()) << page.dump();
  auto rest = body_json(c->Get(("/api/schedules/" + sid + "?limit=1000&after="
                                + std::to_string(page["next_after"].get<int64_t>()))
                                 .c_str()));
  EXPECT_EQ(rest["events"].size() + 2, as_json["events"].size());
  EXPECT_TRUE(rest["next_after"].is_null());
  // trigger: a run now, as a tick would, said in runs' BY and the events.
  auto triggered = cli({"trigger", sid});
  ASSERT_EQ(triggered.exit_code, 0) << triggered.err;
  auto tid = triggered.out.substr(0, triggered.out.find('\n'));
  auto tick = wait_ended(*c, tid);
  EXPECT_EQ(tick["status"], "succeeded");
  EXPECT_EQ(tick["schedule_id"], sid);
  EXPECT_EQ(tick["launched_by"], "trigger");
  auto by = run_troupe({"runs"}, tmp.path(), env);
  EXPECT_NE(by.out.find(sid + " (trigger)"), std::string::npos) << by.out;
  EXPECT_NE(cli({"show", sid}).out.find("triggered  triggered by the API (from 127.0.0.1): "
                                        "launched run " + tid),
            std::string::npos);
  EXPECT_NE(cli({"show", sid}).out.find("T04:30:00.000Z"), std::string::npos)
    << "the next tick stays where it was";
  EXPECT_EQ(cli({"trigger", "sch-nope"}).exit_code, 2);
  // forbid: refused while one of its runs has not ended; replace: cancels it.
  auto slow = cli({"add", "slow", "--every", "1h", "--overlap", "forbid"});
  auto slow_id = slow.out.substr(0, slow.out.find('\n'));
  auto first = cli({"trigger", slow_id});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto first_id = first.out.substr(0, first.out.find('\n'));
  auto refused = cli({"trigger", slow_id});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("(overlap: forbid): its run " + first_id + " has not ended"),
            std::string::npos)
    << refused.err;
  ASSERT_EQ(cli({"edit", slow_id, "--overlap", "replace"}).exit_code, 0);
  auto second = cli({"trigger", slow_id});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  auto replaced = wait_ended(*c, first_id, 20s);
  EXPECT_EQ(replaced["status"], "cancelled");
  EXPECT_EQ(replaced["reason"].get<std::string>().rfind("cancelled by schedule " + slow_id
                                                        + " (overlap: replace): triggered by "
                                                          "the API",
                                                        0),
            0u)
    << replaced.dump();
  EXPECT_EQ(run_troupe({"cancel", second.out.substr(0, second.out.find('\n'))}, tmp.path(), env)
              .exit_code,
            0);
  EXPECT_EQ(cli({"delete", sid}).exit_code, 0);
  EXPECT_EQ(cli({"show", sid}).exit_code, 2);
}

// One resolver for every reading command (and rerun, cancel, status):
// --server, then -o/--db, then $TROUPE_SERVER, the config file, the default
// server when it answers, else the local store; a configured server that
// does not answer falls back to the store with a note. Tokens come from
// --token, --token-file, $TROUPE_TOKEN, $TROUPE_TOKEN_FILE or the config.
TEST_F(CoordinatorTest, EveryReadingCommandGoesWhereTheResolverSaysByEachRule) {
  std::ofstream(tmp.path() + "/token") << "s3cret-token\n";
  auto args = base_args();
  args.insert(args.end(), {"--token-file", tmp.path() + "/token"});
  coordinator_process co(args, tmp.path());
  auto c = co.client("s3cret-token");
  auto remote = launch(*c, {{"pipeline", "quick"}})["id"].get<std::string>();
  wait_ended(*c, remote);
  // A local run, in the default store of the folder the commands run in.
  std::string here = tmp.path() + "/here";
  ::mkdir(here.c_str(), 0755);
  std::ofstream(here + "/local.yaml") << "name: local\nstages:\n  - name: hello\n"
                                         "    shell: \"echo local hello\"\n";
  // No config file but the test's own; no server or token from outside.
  std::vector<std::string> clean{"HOME=" + tmp.path(), "XDG_CONFIG_HOME=" + tmp.path() + "/cfg",
                                 "TROUPE_SERVER=", "TROUPE_TOKEN=", "TROUPE_TOKEN_FILE="};
  ASSERT_EQ(run_troupe({"run", "local.yaml"}, here, clean).exit_code, 0);
  auto local_runs = json::parse(run_troupe({"runs", "--json", "-o", here + "/output/running_order"},
                                           here, clean).out);
  ASSERT_EQ(local_runs["runs"].size(), 1u);
  auto local = local_runs["runs"][0]["id"].get<std::string>();
  EXPECT_EQ(local_runs["runs"][0]["launched_by"], "manual");

  auto with = [&](std::vector<std::string> env) {
    env.insert(env.begin(), clean.begin(), clean.end());
    return env;
  };
  // Each command reads one run's facts where it was sent; `id` must be there.
  auto reads_from = [&](const std::vector<std::string>& extra, const std::vector<std::string>& env,
                        const std::string& id, const std::string& said) {
    SCOPED_TRACE(said);
    auto cmd = [&](std::vector<std::string> a) {
      a.insert(a.end(), extra.begin(), extra.end());
      return run_troupe(a, here, env);
    };
    auto runs = cmd({"runs"});
    EXPECT_EQ(runs.exit_code, 0) << runs.err;
    EXPECT_NE(runs.out.find(id.substr(0, 8)), std::string::npos) << runs.out;
    auto shown = cmd({"show", id, "--json"});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    EXPECT_NE(shown.out.find(id), std::string::npos);
    auto events = cmd({"events", id});
    EXPECT_EQ(events.exit_code, 0) << events.err;
    EXPECT_NE(events.out.find("run succeeded"), std::string::npos) << events.out;
    auto followed = cmd({"events", id, "--follow"});
    EXPECT_EQ(followed.exit_code, 0) << followed.err;
    EXPECT_NE(followed.out.find("run succeeded"), std::string::npos) << followed.out;
    auto logs = cmd({"logs", id, "hello"});
    EXPECT_EQ(logs.exit_code, 0) << logs.err;
    auto status = cmd({"status"});
    EXPECT_NE(status.out.find(said), std::string::npos) << status.out;
    return runs.err;
  };
  const std::string token_file = tmp.path() + "/token";
  // 1. --server (with --token, then --token-file).
  reads_from({"--server", co.url(), "--token", "s3cret-token"}, with({}), remote,
             "read: the server " + co.url() + " (--server)");
  reads_from({"--server", co.url(), "--token-file", token_file}, with({}), remote,
             "read: the server " + co.url() + " (--server)");
  auto wrong = run_troupe({"runs", "--server", co.url(), "--token", "nope"}, here, with({}));
  EXPECT_EQ(wrong.exit_code, 2) << "a wrong token is the caller's to fix: " << wrong.err;
  auto gone = run_troupe({"runs", "--server", "http://127.0.0.1:1"}, here, with({}));
  EXPECT_EQ(gone.exit_code, 4) << "an asked-for server is not fallen back from";
  // 2. -o/--db beat $TROUPE_SERVER.
  auto server_env = with({"TROUPE_SERVER=" + co.url(), "TROUPE_TOKEN=s3cret-token"});
  reads_from({"-o", here + "/output/running_order"}, server_env, local,
             "read: the local store " + here + "/output/running_order/troupe.db "
             "(-o/--output was given)");
  reads_from({"--db", here + "/output/running_order/troupe.db"}, server_env, local,
             "(--db was given)");
  // 3. $TROUPE_SERVER (with $TROUPE_TOKEN, then $TROUPE_TOKEN_FILE).
  reads_from({}, server_env, remote, "read: the server " + co.url() + " ($TROUPE_SERVER)");
  reads_from({}, with({"TROUPE_SERVER=" + co.url(), "TROUPE_TOKEN_FILE=" + token_file}), remote,
             "($TROUPE_SERVER)");
  // ... and when it does not answer: the local store, said on stderr.
  auto note = reads_from({}, with({"TROUPE_SERVER=http://127.0.0.1:1"}), local,
                         "read: the local store output/running_order/troupe.db (no coordinator "
                         "answers at http://127.0.0.1:1 (from $TROUPE_SERVER))");
  EXPECT_NE(note.find("no coordinator answers at http://127.0.0.1:1 (from $TROUPE_SERVER"),
            std::string::npos)
    << note;
  EXPECT_NE(note.find("reading the local store output/running_order/troupe.db"),
            std::string::npos);
  // 4. The config file (server: and token_file:).
  ::mkdir((tmp.path() + "/cfg").c_str(), 0755);
  ::mkdir((tmp.path() + "/cfg/troupe").c_str(), 0755);
  std::ofstream(tmp.path() + "/cfg/troupe/config.yaml")
    << "server: " << co.url() << "\ntoken_file: " << token_file << "\n";
  reads_from({}, with({}), remote, "read: the server " + co.url() + " (" + tmp.path()
                                     + "/cfg/troupe/config.yaml)");
  std::ofstream(tmp.path() + "/cfg/troupe/config.yaml") << "server: " << co.url()
                                                        << "\ntoken_file: /nonexistent\n";
  auto bad = run_troupe({"runs"}, here, with({}));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("config.yaml: token_file: /nonexistent: No such file"), std::string::npos)
    << bad.err;
  std::remove((tmp.path() + "/cfg/troupe/config.yaml").c_str());
  // 5./6. Nothing configured: the default server when it answers (a
  // developer's own coordinator may), else the local store.
  int probe = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(8420);
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool default_taken = ::connect(probe, reinterpret_cast<sockaddr*>(&at), sizeof at) == 0;
  ::close(probe);
  if (!default_taken)
    reads_from({}, with({}), local, "(no server is configured and none answers at "
                                    "http://127.0.0.1:8420)");
}

// troupe cancel: through the API, or locally: a `troupe run` on this host
// gets SIGTERM and its reason names troupe cancel.
TEST_F(CoordinatorTest, CancelStopsALocalRunOrOneOnTheServerByTheSameRule) {
  std::vector<std::string> clean{"TROUPE_SERVER=", "TROUPE_TOKEN=", "TROUPE_TOKEN_FILE=",
                                 "HOME=" + tmp.path(), "XDG_CONFIG_HOME=" + tmp.path() + "/cfg"};
  std::ofstream(tmp.path() + "/slow.yaml") << "name: slowly\nstages:\n  - name: wait\n"
                                              "    shell: \"sleep 30\"\n";
  troupe_process run({"run", "slow.yaml", "-o", tmp.path() + "/local"}, tmp.path(), clean);
  std::string id;
  ASSERT_TRUE(run.wait_until(
    [&] {
      auto j = json::parse(run_troupe({"runs", "--json", "-o", tmp.path() + "/local"}, tmp.path(),
                                      clean).out, nullptr, false);
      if (!j.is_object() || j["runs"].empty() || j["runs"][0]["status"] != "running")
        return false;
      id = j["runs"][0]["id"];
      return true;
    },
    10s));
  auto asked = run_troupe({"cancel", id.substr(0, 13), "-o", tmp.path() + "/local"}, tmp.path(),
                          clean);
  EXPECT_EQ(asked.exit_code, 0) << asked.err;
  EXPECT_NE(asked.out.find("cancel requested for run " + id), std::string::npos) << asked.out;
  auto ended = run.wait(20s);
  EXPECT_EQ(ended.exit_code, 130) << ended.err;
  auto shown = json::parse(run_troupe({"show", id, "--json", "-o", tmp.path() + "/local"},
                                      tmp.path(), clean).out);
  EXPECT_EQ(shown["status"], "cancelled");
  EXPECT_EQ(shown["reason"].get<std::string>().rfind("cancelled by troupe cancel (process ", 0),
            0u)
    << shown.dump();
  auto again = run_troupe({"cancel", id, "-o", tmp.path() + "/local"}, tmp.path(), clean);
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("has ended (cancelled); there is nothing to cancel"), std::string::npos)
    << again.err;
  // The same command, through a coordinator.
  coordinator_process co(base_args(), tmp.path());
  auto remote = launch(*co.client(), {{"pipeline", "slow"}})["id"].get<std::string>();
  auto env = clean;
  env.push_back("TROUPE_SERVER=" + co.url());
  auto through = run_troupe({"cancel", remote}, tmp.path(), env);
  EXPECT_EQ(through.exit_code, 0) << through.err;
  EXPECT_EQ(wait_ended(*co.client(), remote, 20s)["status"], "cancelled");
}

TEST_F(CoordinatorTest, SchedulesRefuseBadFieldsByName) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  struct bad {
    json body;
    int status;
    std::string names;
  };
  for (auto& b : std::vector<bad>{
         {{{"pipeline", "quick"}, {"kind", "hourly"}}, 400, "kind"},
         {{{"pipeline", "quick"}, {"kind", "interval"}}, 400, "every"},
         {{{"pipeline", "quick"}, {"kind", "interval"}, {"every", "soon"}}, 400, "every"},
         {{{"pipeline", "quick"}, {"kind", "cron"}, {"cron", "61 * * * *"}}, 400, "cron"},
         {{{"pipeline", "quick"}, {"kind", "once"}, {"at", "tomorrow"}}, 400, "at"},
         // Strict RFC 3339: no rollover, no day that its month lacks.
         {{{"pipeline", "quick"}, {"kind", "once"}, {"at", "2026-13-45T25:61:61Z"}}, 400, "at"},
         {{{"pipeline", "quick"}, {"kind", "once"}, {"at", "2030-02-30T00:00:00Z"}}, 400, "at"},
         {{{"pipeline", "quick"}, {"kind", "once"}, {"at", "2030-01-01T24:00:00Z"}}, 400, "at"},
         {{{"pipeline", "quick"}, {"kind", "once"}, {"at", "2030-01-01T00:00:00"}}, 400, "at"},
         {{{"pipeline", "quick"}, {"kind", "once"}, {"at", "2030-01-01 00:00:00Z junk"}}, 400, "at"},
         // Beyond what a timestamp holds, and in the past: it could never fire.
         {{{"pipeline", "quick"}, {"kind", "once"}, {"at", "9999-01-01T00:00:00Z"}}, 400, "at"},
         {{{"pipeline", "quick"}, {"kind", "once"}, {"at", "2001-01-01T00:00:00Z"}}, 400, "at"},
         {{{"pipeline", "quick"}, {"kind", "cron"}, {"cron", "0 0 31 2 *"}}, 400, "cron"},
         {{{"pipeline", "quick"}, {"kind", "cron"}, {"cron", "0 0 30 2 *"}}, 400, "cron"},
         // What a run refuses, a schedule refuses when made.
         {{{"pipeline", "quick"}, {"kind", "interval"}, {"every", "1m"},
           {"env", {{"TROUPE_TOKEN", "x"}}}}, 400, "env.TROUPE_TOKEN"},
         {{{"pipeline", "flaky"}, {"kind", "interval"}, {"every", "1m"},
           {"env", {{"LD_PRELOAD", "/x.so"}}}}, 400, "env.LD_PRELOAD"},
         {{{"pipeline", "quick"}, {"kind", "interval"}, {"every", "1m"},
           {"env", {{"GREETING", "hi"}}}}, 400, "env.GREETING"},
         {{{"pipeline", "quick"}, {"kind", "interval"}, {"every", "1m"}, {"cron", "* * * * *"}},
          400, "cron"},
         {{{"pipeline", "quick"}, {"kind", "interval"}, {"every", "1m"}, {"overlap", "maybe"}},
          400, "overlap"},
         {{{"pipeline", "quick"}, {"kind", "interval"}, {"every", "1m"}, {"catch_up", "some"}},
          400, "catch_up"},
         {{{"pipeline", "quick"}, {"kind", "interval"}, {"every", "1m"}, {"when", "now"}}, 400,
          "when"},
         {{{"pipeline", "ghost"}, {"kind", "interval"}, {"every", "1m"}}, 404, ""}}) {
    auto r = c->Post("/api/schedules", b.body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, b.status) << b.body.dump() << " -> " << r->body;
    EXPECT_EQ(error_message(r).rfind(b.names, 0), 0u) << b.body.dump() << " -> " << r->body;
  }
  auto ok = c->Post("/api/schedules",
                    R"({"pipeline": "quick", "kind": "cron", "cron": "@daily", "enabled": false})",
                    "application/json");
  ASSERT_EQ(ok->status, 201) << ok->body;
  auto s = body_json(ok);
  EXPECT_EQ(s["enabled"], false);
  EXPECT_EQ(s["next_run_at"].get<std::string>().substr(11), "00:00:00.000Z");
  // Far (but holdable) times get their real next_run_at; offsets count.
  for (auto [at, next] : std::vector<std::pair<std::string, std::string>>{
         {"2200-01-01T00:00:00Z", "2200-01-01T00:00:00.000Z"},
         {"2030-01-01T01:30:00+01:00", "2030-01-01T00:30:00.000Z"},
         {"2032-02-29T12:00:00.25Z", "2032-02-29T12:00:00.250Z"}}) {
    auto far = c->Post("/api/schedules",
                       json{{"pipeline", "quick"}, {"kind", "once"}, {"at", at}}.dump(),
                       "application/json");
    ASSERT_EQ(far->status, 201) << at << " -> " << far->body;
    EXPECT_EQ(body_json(far)["next_run_at"], next) << at;
    c->Delete(("/api/schedules/" + body_json(far)["id"].get<std::string>()).c_str());
  }
  auto listed = body_json(c->Get("/api/schedules"))["schedules"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(c->Patch(("/api/schedules/" + s["id"].get<std::string>()).c_str(),
                     R"({"kind": "once"})", "application/json")
              ->status,
            400);
}

TEST_F(CoordinatorTest, SettingsComeFromTheFileThenFlagsThenTheEnvironment) {
  // The documented example, as shipped: its pipelines are registered.
  auto example = std::string(TROUPE_SOURCE_DIR) + "/configs/coordinator.yaml";
  {
    coordinator_process co({"--config", example, "-o", out()}, tmp.path());
    auto h = body_json(co.client()->Get("/health"));
    EXPECT_EQ(h["max_running"], 8) << "from the file";
    std::set<std::string> names;
    auto list = body_json(co.client()->Get("/api/pipelines"));
    for (auto& p : list["pipelines"])
      names.insert(p["name"].get<std::string>());
    EXPECT_EQ(names.count("canary"), 1u) << list.dump();
  }
  {
    coordinator_process co({"--config", example, "-o", out(), "--max-running", "5"}, tmp.path());
    EXPECT_EQ(body_json(co.client()->Get("/health"))["max_running"], 5) << "a flag beats the file";
  }
  {
    coordinator_process co({"--config", example, "-o", out(), "--max-running", "5"}, tmp.path(),
                           {"TROUPE_MAX_RUNNING=3", "TROUPE_PIPELINES=" + pipes()});
    auto h = body_json(co.client()->Get("/health"));
    EXPECT_EQ(h["max_running"], 3) << "the environment beats both";
    EXPECT_EQ(h["pipelines"], pipes());
  }
  // Bad settings: a clear error naming where, exit 2, nothing started.
  auto bad = tmp.write("bad.yaml", "listen: 127.0.0.1:0\npipelines: pipes\nmax_runing: 3\n");
  struct c {
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string says;
  };
  for (auto& k : std::vector<c>{
         {{"coordinator", "--config", bad}, {}, "bad.yaml:3: max_runing: unknown setting"},
         {{"coordinator", "--pipelines", pipes(), "--max-running", "-1"}, {}, "--max-running"},
         {{"coordinator", "--pipelines", pipes(), "--listen", "localhost"}, {}, "not HOST:PORT"},
         {{"coordinator", "--pipelines", tmp.path() + "/none"}, {}, "--pipelines"},
         {{"coordinator"}, {}, "--pipelines: required"},
         {{"coordinator", "--pipelines", pipes()}, {"TROUPE_LEASE=soon"}, "$TROUPE_LEASE"},
         {{"coordinator", "--config", tmp.path() + "/missing.yaml"}, {}, "missing.yaml"}}) {
    auto r = run_troupe(k.args, tmp.path(), k.env);
    EXPECT_EQ(r.exit_code, 2) << k.says << "\n" << r.err;
    EXPECT_NE(r.err.find(k.says), std::string::npos) << r.err;
  }
}

TEST_F(CoordinatorTest, TheCliClientLaunchesFollowsCancelsAndSchedulesThroughTheApi) {
  coordinator_process co(base_args(), tmp.path());
  std::vector<std::string> env{"TROUPE_SERVER=" + co.url()};
  // --follow prints troupe run's lines and exits with the run's code.
  auto followed = run_troupe({"launch", "flaky", "--follow"}, tmp.path(), env);
  EXPECT_EQ(followed.exit_code, 0) << followed.err;
  auto direct = run_troupe({"run", pipes() + "/flaky.yaml", "-o", tmp.path() + "/direct", "--no-db"},
                           tmp.path());
  ASSERT_EQ(direct.exit_code, 0);
  auto lines_of = [](const std::string& text) {
    // The stage lines, with each measured duration written as D.
    static const std::regex duration{"[0-9]+(\\.[0-9]+)?(ms|s) *"};
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
      if (l.rfind("[", 0) == 0)
        out.push_back(std::regex_replace(l, duration, "D "));
    return out;
  };
  EXPECT_EQ(lines_of(followed.out), lines_of(direct.out)) << followed.out << "\n---\n" << direct.out;
  EXPECT_NE(followed.out.find("run succeeded in"), std::string::npos);
  pipe("failing", "  - name: bad\n    shell: \"echo broken >&2; exit 3\"\n");
  auto failing = run_troupe({"launch", "failing", "--wait"}, tmp.path(), env);
  EXPECT_EQ(failing.exit_code, 1) << failing.out << failing.err;
  // launch prints the id; logs and show read it back; cancel stops a run.
  auto quick = run_troupe({"launch", "quick"}, tmp.path(), env);
  ASSERT_EQ(quick.exit_code, 0) << quick.err;
  auto id = quick.out.substr(0, quick.out.find('\n'));
  auto c = co.client();
  wait_ended(*c, id);
  EXPECT_EQ(run_troupe({"logs", id, "hello"}, tmp.path(), env).out, "hello\n");
  EXPECT_EQ(run_troupe({"logs", id, "hello", "--stderr"}, tmp.path(), env).out, "to-stderr\n");
  auto shown = run_troupe({"show", id, "--json"}, tmp.path(), env);
  EXPECT_EQ(json::parse(shown.out)["status"], "succeeded") << shown.err;
  auto listed = run_troupe({"runs", "--json"}, tmp.path(), env);
  EXPECT_GE(json::parse(listed.out)["runs"].size(), 3u);
  auto events = run_troupe({"events", id, "--follow"}, tmp.path(), env);
  EXPECT_EQ(events.exit_code, 0);
  EXPECT_NE(events.out.find("run succeeded"), std::string::npos) << events.out;
  auto slow = run_troupe({"launch", "slow"}, tmp.path(), env).out;
  slow = slow.substr(0, slow.find('\n'));
  EXPECT_EQ(run_troupe({"cancel", slow}, tmp.path(), env).exit_code, 0);
  EXPECT_EQ(wait_ended(*c, slow, 20s)["status"], "cancelled");
  auto twice = run_troupe({"cancel", slow}, tmp.path(), env);
  EXPECT_EQ(twice.exit_code, 2);
  EXPECT_NE(twice.err.find("has ended"), std::string::npos) << twice.err;
  // Schedules.
  auto added = run_troupe({"schedule", "add", "quick", "--every", "1h"}, tmp.path(), env);
  ASSERT_EQ(added.exit_code, 0) << added.err;
  auto sid = added.out.substr(0, added.out.find('\n'));
  EXPECT_EQ(run_troupe({"schedule", "disable", sid}, tmp.path(), env).exit_code, 0);
  auto list = run_troupe({"schedule", "list"}, tmp.path(), env);
  EXPECT_NE(list.out.find(sid), std::string::npos);
  EXPECT_NE(list.out.find(" no "), std::string::npos) << list.out;
  EXPECT_EQ(run_troupe({"schedule", "delete", sid}, tmp.path(), env).exit_code, 0);
  EXPECT_EQ(run_troupe({"schedule", "delete", sid}, tmp.path(), env).exit_code, 2);
  // Errors: a wrong server says so; an unknown pipeline names it.
  auto away = run_troupe({"launch", "quick", "--server", "http://127.0.0.1:1"}, tmp.path());
  EXPECT_EQ(away.exit_code, 4);
  EXPECT_NE(away.err.find("cannot reach the coordinator at http://127.0.0.1:1"), std::string::npos)
    << away.err;
  auto ghost = run_troupe({"launch", "ghost"}, tmp.path(), env);
  EXPECT_EQ(ghost.exit_code, 2);
  EXPECT_NE(ghost.err.find("pipeline 'ghost' is not registered"), std::string::npos) << ghost.err;
}

TEST_F(CoordinatorTest, SigtermLeavesRunsToTheNextStartAndDrainWaitsForThem) {
  pipe("short", "  - name: nap\n    shell: \"sleep 1.5\"\n");
  auto args = base_args();
  args.push_back("--drain");
  coordinator_process co(args, tmp.path());
  auto c = co.client();
  auto id = launch(*c, {{"pipeline", "short"}})["id"].get<std::string>();
  std::this_thread::sleep_for(300ms);
  auto t0 = std::chrono::steady_clock::now();
  ::kill(co.pid(), SIGTERM);
  auto r = co.process().wait(20s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms) << "it waited for the run";
  auto shown = run_troupe({"show", id, "--json", "-o", out()}, tmp.path());
  EXPECT_EQ(json::parse(shown.out)["status"], "succeeded") << shown.out << shown.err;
  // Without --drain: it stops at once; the run is reconciled at the next start.
  coordinator_process again(base_args(), tmp.path());
  auto c2 = again.client();
  auto slow = launch(*c2, {{"pipeline", "slow"}})["id"].get<std::string>();
  std::this_thread::sleep_for(300ms);
  auto t1 = std::chrono::steady_clock::now();
  ::kill(again.pid(), SIGTERM);
  EXPECT_EQ(again.process().wait(10s).exit_code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 3s);
  coordinator_process third(base_args(), tmp.path());
  auto after = wait_ended(*third.client(), slow, 30s);
  EXPECT_EQ(after["status"], "failed");
  EXPECT_EQ(after["failure_code"], "interrupted");
}

TEST_F(CoordinatorTest, TicksMissedWhileNoCoordinatorRanAreCaughtUpAsConfigured) {
  auto settings = tmp.write("co.yaml", "pipelines: pipes\noutput: out\nschedule_grace: 1s\n");
  std::map<std::string, std::string> ids;
  {
    coordinator_process first({"--config", settings}, tmp.path());
    auto c = first.client();
    for (auto mode : {"none", "one", "all"}) {
      auto r = c->Post("/api/schedules",
                       json{{"pipeline", "quick"}, {"kind", "interval"}, {"every", "1s"},
                            {"catch_up", mode}}
                         .dump(),
                       "application/json");
      ASSERT_EQ(r->status, 201) << r->body;
      ids[mode] = body_json(r)["id"].get<std::string>();
    }
    std::this_thread::sleep_for(1200ms);
    ::kill(first.pid(), SIGTERM);
    ASSERT_EQ(first.process().wait(10s).exit_code, 0);
  }
  std::this_thread::sleep_for(4500ms);  // no coordinator: about four ticks pass
  coordinator_process second({"--config", settings}, tmp.path());
  auto c = second.client();
  std::this_thread::sleep_for(800ms);
  for (auto& [mode, id] : ids)
    ASSERT_EQ(c->Patch(("/api/schedules/" + id).c_str(), R"({"enabled": false})",
                       "application/json")
                ->status,
              200);
  auto count = [&](const std::string& mode, const std::string& kind) {
    auto s = body_json(c->Get(("/api/schedules/" + ids[mode]).c_str()));
    int n = 0;
    for (auto& e : s["events"])
      n += e["kind"] == kind ? 1 : 0;
    return n;
  };
  EXPECT_EQ(count("none", "caught_up"), 0);
  EXPECT_GE(count("none", "skipped"), 2);
  // one: a single run stands for the outage (the latest missed tick, or the
  // tick that is merely late when there is one), the others are skipped.
  EXPECT_LE(count("one", "caught_up"), 1);
  EXPECT_GE(count("one", "skipped"), 2);
  EXPECT_GE(count("all", "caught_up"), 2);
  EXPECT_EQ(count("all", "skipped"), 0);
  // The runs say the same: "all" has a run for every tick, one second apart.
  auto runs = body_json(c->Get("/api/runs?limit=1000"))["runs"];
  std::vector<int64_t> ticks;
  for (auto& r : runs)
    if (r["schedule_id"] == ids["all"])
      ticks.push_back(ms_of(r["scheduled_for"]));
  std::sort(ticks.begin(), ticks.end());
  ASSERT_GE(ticks.size(), 5u);
  for (size_t k = 1; k < ticks.size(); ++k)
    EXPECT_EQ(ticks[k] - ticks[k - 1], 1000);
}

TEST_F(CoordinatorTest, APipelinesOwnMaxRunningHoldsEvenForAPipelineAddedLater) {
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  // Added after the start: found at the first launch, with its limit.
  std::ofstream(pipes() + "/single.yaml")
    << "name: single\nmax_running: 1\nstages:\n  - name: nap\n    shell: \"sleep 0.3\"\n";
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(launch(*c, {{"pipeline", "single"}})["id"].get<std::string>());
  auto other = launch(*c, {{"pipeline", "quick"}})["id"].get<std::string>();
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (auto& id : ids) {
    auto run = wait_ended(*c, id);
    EXPECT_EQ(run["status"], "succeeded");
    auto& a = run["jobs"][0]["attempts"][0];
    spans.emplace_back(ms_of(a["started_at"]), ms_of(a["finished_at"]));
  }
  std::sort(spans.begin(), spans.end());
  for (size_t k = 1; k < spans.size(); ++k)
    EXPECT_GE(spans[k].first, spans[k - 1].second) << "one at a time";
  // Another pipeline is not held up behind them.
  auto q = wait_ended(*c, other);
  EXPECT_LT(ms_of(q["jobs"][0]["attempts"][0]["started_at"]), spans[1].first);
}

TEST_F(CoordinatorTest, ACancelAskedOfAnotherCoordinatorReachesTheRunsOwner) {
  // Two coordinators on one store (the same SQLite file).
  coordinator_process a(base_args(), tmp.path());
  coordinator_process b(base_args(), tmp.path());
  auto id = launch(*a.client(), {{"pipeline", "slow"}})["id"].get<std::string>();
  ASSERT_TRUE(a.process().wait_until(
    [&] { return body_json(a.client()->Get(("/api/runs/" + id).c_str()))["status"] == "running"; },
    10s));
  auto t0 = std::chrono::steady_clock::now();
  auto r = b.client()->Post(("/api/runs/" + id + "/cancel").c_str(), "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202) << r->body;
  auto run = wait_ended(*b.client(), id, 20s);
  EXPECT_EQ(run["status"], "cancelled");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
  EXPECT_NE(a.log().find("cancelled at a request through the store"), std::string::npos)
    << a.log();
  EXPECT_NE(run["reason"].get<std::string>().find("cancelled through the store (asked of "
                                                  "coordinator "),
            std::string::npos)
    << run.dump();
}

TEST_F(CoordinatorTest, ParamsAndARerunGoThroughTheApi) {
  auto marker = tmp.path() + "/fixed";
  std::ofstream(pipes() + "/param.yaml")
    << "name: param\nparams:\n  who: { required: true }\nstages:\n"
    << "  - name: greet\n    run: [echo, \"hello ${params.who}\"]\n"
    << "  - name: check\n    shell: \"echo try-$TROUPE_ATTEMPT; test -e " << marker << "\"\n";
  coordinator_process co(base_args(), tmp.path());
  auto c = co.client();
  auto missing = c->Post("/api/runs", json{{"pipeline", "param"}}.dump(), "application/json");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 400);
  EXPECT_NE(error_message(missing).find("parameter 'who' is required"), std::string::npos)
    << missing->body;
  auto id = launch(*c, {{"pipeline", "param"}, {"params", {{"who", "api"}}}})["id"].get<std::string>();
  auto run = wait_ended(*c, id);
  EXPECT_EQ(run["status"], "failed");
  EXPECT_EQ(run["params"], (json{{"who", "api"}}));
  auto dir = run["run_dir"].get<std::string>();
  EXPECT_EQ(read_file(dir + "/logs/greet.stdout.log"), "hello api\n");

  ::close(::open(marker.c_str(), O_CREAT | O_WRONLY, 0644));
  auto rerun = c->Post(("/api/runs/" + id + "/rerun").c_str(),
                       json{{"reason", "marker made"}}.dump(), "application/json");
  ASSERT_TRUE(rerun);
  EXPECT_EQ(rerun->status, 202) << rerun->body;
  run = wait_ended(*c, id);
  EXPECT_EQ(run["status"], "succeeded");
  ASSERT_EQ(run["jobs"].size(), 2u);
  EXPECT_EQ(run["jobs"][0]["attempts"].size(), 1u) << "greet succeeded: not run again";
  EXPECT_EQ(run["jobs"][1]["attempts"].size(), 2u);
  EXPECT_EQ(read_file(dir + "/logs/check.attempt-2.stdout.log"), "try-2\n");
  auto again = c->Post(("/api/runs/" + id + "/rerun").c_str(), "", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409) << "nothing failed now";
  auto bad = c->Post(("/api/runs/" + id + "/rerun").c_str(), json{{"from", "nope"}}.dump(),
                     "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  auto events = body_json(c->Get(("/api/runs/" + id + "/events").c_str()));
  std::string all;
  for (auto& e : events["events"])
    all += e["message"].get<std::string>() + "\n";
  EXPECT_NE(all.find("rerun (--failed) by api ("), std::string::npos) << all;
  EXPECT_NE(all.find("reason: marker made"), std::string::npos) << all;

  // A schedule's runs need their parameters too: refused when it is made.
  auto sched = c->Post("/api/schedules",
                       json{{"pipeline", "param"}, {"kind", "interval"}, {"every", "1h"}}.dump(),
                       "application/json");
  ASSERT_TRUE(sched);
  EXPECT_EQ(sched->status, 400) << sched->body;
  EXPECT_NE(error_message(sched).find("parameter 'who' is required"), std::string::npos)
    << sched->body;

  // The CLI asks the API when a server is given.
  auto cli = run_troupe({"rerun", id, "--server", co.url(), "--from", "greet", "--reason", "cli"},
                        tmp.path());
  EXPECT_EQ(cli.exit_code, 0) << cli.out << cli.err;
  EXPECT_NE(cli.out.find("rerun of " + id + ": running at "), std::string::npos) << cli.out;
  run = wait_ended(*c, id);
  EXPECT_EQ(run["status"], "succeeded");
  EXPECT_EQ(run["jobs"][0]["attempts"].size(), 2u) << "greet ran again (--from greet)";
  EXPECT_EQ(read_file(dir + "/logs/greet.attempt-2.stdout.log"), "hello api\n")
    << "with the params it started with";
  auto refused = run_troupe({"rerun", id, "--server", co.url(), "--from", "nope"}, tmp.path());
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("--from nope"), std::string::npos) << refused.err;
}

// The node's slots hold across runs: 10 runs of a `cpus: 1` stage on a
// 2-slot node never have more than 2 stages running at once (by the
// attempts' own times in the store), and a held-back stage says why.
TEST_F(CoordinatorTest, TenRunsOnATwoSlotNodeNeverRunMoreThanTwoStagesAtOnce) {
  pipe("onecpu", "  - name: work\n    shell: \"sleep 0.3\"\n    resources: {cpus: 1}\n");
  auto args = base_args();
  args.insert(args.end(), {"--node-slots", "2"});
  coordinator_process co(args, tmp.path());
  auto c = co.client();
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i)
    ids.push_back(launch(*c, {{"pipeline", "onecpu"}})["id"].get<std::string>());
  std::vector<std::pair<int64_t, int>> edges;
  bool told = false;
  for (auto& id : ids) {
    auto run = wait_ended(*c, id);
    ASSERT_EQ(run["status"], "succeeded") << run.dump();
    auto& a = run["stages"][0]["attempts"][0];
    edges.emplace_back(ms_of(a["started_at"]), 1);
    edges.emplace_back(ms_of(a["finished_at"]), -1);
    auto events = body_json(c->Get(("/api/runs/" + id + "/events").c_str()))["events"];
    for (auto& e : events)
      told = told || e["message"].get<std::string>().rfind("waiting for the node: 2 of 2 CPU "
                                                           "slots in use", 0) == 0;
  }
  std::sort(edges.begin(), edges.end());
  int now = 0, most = 0;
  for (auto& [t, d] : edges)
    most = std::max(most, now += d);
  EXPECT_EQ(most, 2) << "stages at once over all runs";
  EXPECT_TRUE(told) << "no run said it waited for the node";
}
