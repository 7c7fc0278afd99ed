// Durable runs end to end on the real binary: HTTP stages against a local
// fixture server (real sockets), escalation to real headless Chromium,
// retries with Retry-After, the store read back through `troupe show
// --json`, and crash recovery after kill -9.
#include "tests/support/troupe_process.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

using namespace troupe::test;
using nlohmann::json;

namespace {

// The Python fixture server on an ephemeral loopback port.
class fixture_server {
public:
  explicit fixture_server(const std::string& log_path = {}) {
    int out[2];
    if (::pipe(out) != 0)
      return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      if (!log_path.empty())
        ::setenv("HTTP_FIXTURE_LOG", log_path.c_str(), 1);
      ::execlp("python3", "python3", TROUPE_SOURCE_DIR "/tests/support/http_fixture.py",
               nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    // Read up to the newline: one read() may return the digits alone, and
    // the pipe stays open for the server's life, because closing it early
    // would make the server's next write fail with EPIPE and kill it.
    std::string line;
    char c = 0;
    while (line.size() < 16) {
      auto n = ::read(out[0], &c, 1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || c == '\n')
        break;
      line.push_back(c);
    }
    out_ = out[0];
    if (!line.empty())
      port_ = std::atoi(line.c_str());
  }
  ~fixture_server() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0)
      ::close(out_);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int port() const {
    return port_;
  }

private:
  pid_t pid_ = -1;
  int out_ = -1;
  int port_ = 0;
};

json show(const temp_dir& dir, const std::string& out) {
  auto runs = run_troupe({"runs", "-o", out, "--json"}, dir.path());
  EXPECT_EQ(runs.exit_code, 0) << runs.err;
  auto id = json::parse(runs.out)["runs"][0]["run_id"].get<std::string>();
  auto r = run_troupe({"show", "-o", out, "--json", id}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

json events_of(const temp_dir& dir, const std::string& out, const std::string& id) {
  auto r = run_troupe({"events", "-o", out, "--json", id}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out)["events"];
}

} // namespace

TEST(DurableRuns, HttpStagesAreClassifiedAndEscalatedToARealBrowser) {
  fixture_server web;
  ASSERT_GT(web.port(), 0);
  temp_dir dir;
  auto pipe = dir.write("web.yaml", R"(name: web
stages:
  - name: ok
    http: { url: ")" + web.url("/ok") + R"(", timeout: 10s }
    strategy: http
  - name: js-page
    http: { url: ")" + web.url("/js") + R"(" }
    timeout: 60s
  - name: forbidden
    http: { url: ")" + web.url("/forbidden") + R"(" }
    strategy: http
    timeout: 60s
    retry: { max_attempts: 2, backoff: { initial: 100ms }, on: [blocked] }
)");
  auto out = dir.path() + "/out";
  auto r = run_troupe({"run", pipe, "-o", out}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto run = show(dir, out);
  EXPECT_EQ(run["status"], "succeeded");
  auto ok = job_of(run, "ok");
  ASSERT_EQ(ok["attempts"].size(), 1u);
  EXPECT_EQ(ok["attempts"][0]["http_status"], 200);
  EXPECT_EQ(ok["attempts"][0]["stats"]["http"]["title"], "Fixture OK");
  EXPECT_EQ(ok["attempts"][0]["stats"]["http"]["content_type"], "text/html");
  EXPECT_GT(ok["attempts"][0]["stats"]["http"]["timings_ms"]["total"].get<double>(), 0.0);
  // auto: the probe's page renders with JavaScript, so Chromium renders it.
  auto js = job_of(run, "js-page");
  ASSERT_EQ(js["attempts"].size(), 1u);
  EXPECT_EQ(js["attempts"][0]["strategy"], "browser");
  EXPECT_EQ(js["attempts"][0]["stats"]["http"]["title"], "Rendered by JS");
  EXPECT_EQ(js["attempts"][0]["http_status"], 200) << "the browser knows the document's status";
  auto run_dir = run["run_dir"].get<std::string>();
  EXPECT_NE(read_file(run_dir + "/logs/js-page.body").find("rendered by javascript"),
            std::string::npos);
  // http gets 403 (blocked); the retry escalates to the browser, which is let in.
  auto fb = job_of(run, "forbidden");
  ASSERT_EQ(fb["attempts"].size(), 2u);
  EXPECT_EQ(fb["attempts"][0]["strategy"], "http");
  EXPECT_EQ(fb["attempts"][0]["failure_code"], "blocked");
  EXPECT_EQ(fb["attempts"][0]["http_status"], 403);
  EXPECT_EQ(fb["attempts"][1]["strategy"], "browser");
  EXPECT_EQ(fb["attempts"][1]["status"], "succeeded");
  EXPECT_EQ(fb["attempts"][1]["stats"]["http"]["title"], "Welcome, browser");
  EXPECT_EQ(fb["attempts"][1]["http_status"], 200);
  bool escalated = false;
  for (auto& e : events_of(dir, out, run["run_id"]))
    escalated = escalated || e["message"].get<std::string>().find("escalating http -> browser")
                               != std::string::npos;
  EXPECT_TRUE(escalated);
  // metadata.json carries the attempts too.
  auto meta = read_json(run_dir + "/metadata.json");
  EXPECT_EQ(meta["stages"][2]["attempts"].size(), 2u);
  EXPECT_EQ(meta["stages"][2]["attempts"][0]["http"]["status"], 403);
}

// Issue 13 item 1: a page that answers 403 to the browser too was recorded
// `succeeded` (chromium --dump-dom cannot see statuses). The browser now
// reads the main document's status through DevTools and is judged like
// http; the fixture's own log says what it answered.
TEST(DurableRuns, ABrowserThatIsStillBlockedFailsBlocked) {
  temp_dir dir;
  auto log = dir.path() + "/fixture.log";
  fixture_server web{log};
  ASSERT_GT(web.port(), 0);
  auto pipe = dir.write("blocked.yaml", R"(name: blocked
stages:
  - name: via-auto
    http: { url: ")" + web.url("/blocked?auto") + R"(" }
    timeout: 60s
    optional: true
  - name: via-retry
    http: { url: ")" + web.url("/blocked?retry") + R"(" }
    strategy: http
    timeout: 60s
    retry: { max_attempts: 2, backoff: { initial: 100ms }, on: [blocked] }
    optional: true
)");
  for (auto stage : {"via-auto", "via-retry"}) {
    auto out = dir.path() + "/out-" + stage;
    auto r = run_troupe({"run", pipe, "-o", out, "--enable", stage}, dir.path());
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    auto run = show(dir, out);
    EXPECT_EQ(run["status"], "failed");
    auto job = job_of(run, stage);
    EXPECT_EQ(job["status"], "failed");
    EXPECT_EQ(job["failure_code"], "blocked") << job.dump(2);
    auto& last = job["attempts"].back();
    EXPECT_EQ(last["strategy"], "browser");
    EXPECT_EQ(last["status"], "failed");
    EXPECT_EQ(last["failure_code"], "blocked");
    EXPECT_EQ(last["http_status"], 403);
    EXPECT_EQ(last["stats"]["http"]["title"], "Access denied");
    EXPECT_NE(last["stats"]["http"]["final_url"].get<std::string>().find("/blocked"),
              std::string::npos);
  }
  // The fixture's record: each strategy got 403, the browser included.
  auto text = read_file(log);
  EXPECT_NE(text.find("403 /blocked?auto client"), std::string::npos) << text;
  EXPECT_NE(text.find("403 /blocked?auto browser"), std::string::npos) << text;
  EXPECT_NE(text.find("403 /blocked?retry client"), std::string::npos) << text;
  EXPECT_NE(text.find("403 /blocked?retry browser"), std::string::npos) << text;
  EXPECT_EQ(text.find("200 /blocked"), std::string::npos) << text;
}

TEST(DurableRuns, RateLimitsAreRetriedAfterRetryAfterAndErrorsClassified) {
  fixture_server web;
  ASSERT_GT(web.port(), 0);
  temp_dir dir;
  auto pipe = dir.write("limits.yaml", R"(name: limits
stages:
  - name: limited
    http: { url: ")" + web.url("/limited") + R"(" }
    strategy: http
    retry: { max_attempts: 3, backoff: { initial: 100ms, max: 5s }, on: [rate_limited] }
)");
  auto out = dir.path() + "/out";
  auto r = run_troupe({"run", pipe, "-o", out}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_GE(r.elapsed.count(), 2000) << "two waits of Retry-After: 1 s, not 100 ms";
  auto run = show(dir, out);
  EXPECT_EQ(run["status"], "failed");
  EXPECT_EQ(run["failure_code"], "rate_limited");
  auto job = job_of(run, "limited");
  ASSERT_EQ(job["attempts"].size(), 3u);
  for (auto& a : job["attempts"]) {
    EXPECT_EQ(a["failure_code"], "rate_limited");
    EXPECT_EQ(a["http_status"], 429);
  }
  int scheduled = 0;
  for (auto& e : events_of(dir, out, run["run_id"]))
    if (e["message"].get<std::string>().rfind("retry scheduled in 1s", 0) == 0) {
      ++scheduled;
      EXPECT_EQ(e["meta"]["retry_after_ms"], 1000);
      EXPECT_EQ(e["meta"]["delay_ms"], 1000);
    }
  EXPECT_EQ(scheduled, 2);

  // 500 is a bad response; a slow answer past the timeout is a timeout;
  // a closed port is a network failure.
  auto pipe2 = dir.write("errors.yaml", R"(name: errors
stages:
  - name: error
    http: { url: ")" + web.url("/error") + R"(" }
    strategy: http
)");
  auto pipe3 = dir.write("slow.yaml", R"(name: slow
stages:
  - name: slow
    http: { url: ")" + web.url("/slow") + R"(", timeout: 1s }
    strategy: http
)");
  auto pipe4 = dir.write("closed.yaml", R"(name: closed
stages:
  - name: closed
    http: { url: "http://127.0.0.1:9/" }
    strategy: http
)");
  struct expectation {
    std::string file, stage, code;
    int exit;
  };
  for (auto& [file, stage, code, exit] :
       std::vector<expectation>{{pipe2, "error", "bad_response", 1},
                                {pipe3, "slow", "timeout", 3},
                                {pipe4, "closed", "network", 1}}) {
    auto o = dir.path() + "/out-" + stage;
    auto res = run_troupe({"run", file, "-o", o}, dir.path());
    EXPECT_EQ(res.exit_code, exit) << stage << res.err;
    auto rr = show(dir, o);
    EXPECT_EQ(job_of(rr, stage)["attempts"][0]["failure_code"], code) << stage;
  }
}

TEST(DurableRuns, AKilledRunnerIsReconciledAtTheNextStart) {
  temp_dir dir;
  auto pipe = dir.write("long.yaml", R"(name: long
stages:
  - name: first
    shell: "true"
  - name: sleeper
    shell: "sleep 30"
  - name: after
    shell: "true"
)");
  auto out = dir.path() + "/out";
  {
    troupe_process p({"run", pipe, "-o", out}, dir.path());
    ASSERT_TRUE(p.wait_until(
      [&] {
        auto run_dir = single_run_dir(out);
        return !run_dir.empty() && ::access((run_dir + "/logs/sleeper.stdout.log").c_str(), F_OK) == 0;
      },
      std::chrono::seconds(20)));
    troupe_process::sleep_ms(300);
    ::kill(p.pid(), SIGKILL);
    p.wait();
  }
  auto before = show(dir, out);
  EXPECT_EQ(before["status"], "running") << "the dead runner could not say otherwise";
  auto sleeper_pid = job_of(before, "sleeper")["attempts"][0]["pid"].get<int>();
  ASSERT_GT(sleeper_pid, 0);
  EXPECT_EQ(::kill(sleeper_pid, 0), 0) << "the stage outlived its runner";

  // The next start reconciles: the run and its attempt end as interrupted,
  // the leftover stage process is killed, then the new run goes ahead.
  auto other = dir.write("quick.yaml", "name: quick\nstages:\n  - name: a\n    shell: \"true\"\n");
  auto r = run_troupe({"run", other, "-o", out}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("recovery: run " + before["run_id"].get<std::string>() + " failed"),
            std::string::npos)
    << r.err;
  auto runs = run_troupe({"show", "-o", out, "--json", before["run_id"]}, dir.path());
  auto after = json::parse(runs.out);
  EXPECT_EQ(after["status"], "failed");
  EXPECT_EQ(after["failure_code"], "interrupted");
  EXPECT_EQ(job_of(after, "first")["status"], "succeeded") << "nothing written is rewritten";
  EXPECT_EQ(job_of(after, "sleeper")["status"], "failed");
  EXPECT_EQ(job_of(after, "sleeper")["attempts"][0]["failure_code"], "interrupted");
  EXPECT_EQ(job_of(after, "after")["status"], "skipped");
  // metadata.json, which the dead runner left saying "running", agrees.
  auto meta = read_json(before["run_dir"].get<std::string>() + "/metadata.json");
  EXPECT_EQ(meta["status"], "failed");
  EXPECT_EQ(meta["failure_code"], "interrupted");
  EXPECT_NE(meta["reason"].get<std::string>().find("is gone; the run was running"),
            std::string::npos)
    << meta["reason"];
  bool gone = false;
  for (int k = 0; k < 100 && !gone; ++k) {
    gone = ::kill(sleeper_pid, 0) != 0;
    troupe_process::sleep_ms(20);
  }
  EXPECT_TRUE(gone) << "the leftover stage process was killed";
  // Events are complete: the start, the attempts, and the reconciliation.
  std::string all;
  for (auto& e : events_of(dir, out, before["run_id"]))
    all += e["message"].get<std::string>() + "\n";
  EXPECT_NE(all.find("run started"), std::string::npos) << all;
  EXPECT_NE(all.find("attempt 1 of 1 started (exec)"), std::string::npos) << all;
  EXPECT_NE(all.find("attempt 1 interrupted"), std::string::npos) << all;
  EXPECT_NE(all.find("run failed: interrupted"), std::string::npos) << all;
}

TEST(DurableRuns, ResumeTrueRerunsTheInterruptedStageInTheSameRun) {
  temp_dir dir;
  auto marker = dir.path() + "/second-time";
  auto pipe = dir.write("resumable.yaml", R"(name: resumable
resume: true
stages:
  - name: first
    shell: "echo once >> )" + dir.path() + R"(/first.count"
  - name: flaky
    shell: "if [ -e )" + marker + R"( ]; then exit 0; fi; touch )" + marker + R"(; sleep 30"
  - name: last
    shell: "true"
)");
  auto out = dir.path() + "/out";
  {
    troupe_process p({"run", pipe, "-o", out}, dir.path());
    ASSERT_TRUE(p.wait_until([&] { return ::access(marker.c_str(), F_OK) == 0; },
                             std::chrono::seconds(20)));
    troupe_process::sleep_ms(300);
    ::kill(p.pid(), SIGKILL);
    p.wait();
  }
  auto r = run_troupe({"run", pipe, "-o", out}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto runs = json::parse(run_troupe({"runs", "-o", out, "--json"}, dir.path()).out)["runs"];
  ASSERT_EQ(runs.size(), 1u) << "the same run went on";
  auto run = show(dir, out);
  EXPECT_EQ(run["status"], "succeeded");
  EXPECT_EQ(read_file(dir.path() + "/first.count"), "once\n") << "finished stages stay done";
  auto flaky = job_of(run, "flaky");
  ASSERT_EQ(flaky["attempts"].size(), 2u);
  EXPECT_EQ(flaky["attempts"][0]["failure_code"], "interrupted");
  EXPECT_EQ(flaky["attempts"][1]["status"], "succeeded");
  EXPECT_TRUE(
    ::access((run["run_dir"].get<std::string>() + "/logs/flaky.attempt-2.stdout.log").c_str(), F_OK)
    == 0);
}
