// Integration (issue 16): pipelines as graphs through the real troupe
// binary. depends_on, max_parallel, fail-fast against on_failure: continue,
// cancel of several running stages, concurrent stages' logs and traces, and
// kill -9 in the middle of a graph. Times come from the records troupe left
// and from the test's own clock.
#include "../support/emitter_pattern.hpp"
#include "../support/troupe_process.hpp"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <algorithm>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

using namespace troupe::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string touch_memory = TROUPE_TOUCH_MEMORY;

struct Graph : ::testing::Test {
  temp_dir tmp;
  std::string out() const { return tmp.path() + "/out"; }
  std::string pipeline(const std::string& yaml) const { return tmp.write("p.yaml", yaml); }

  troupe_result run(const std::string& yaml, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"run", pipeline(yaml), "--output", out()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_troupe(args, tmp.path());
  }
  json metadata() { return read_json(single_run_dir(out()) + "/metadata.json"); }

  static const json& stage(const json& m, const std::string& name) {
    for (const auto& s : m["stages"])
      if (s["name"] == name)
        return s;
    throw std::runtime_error("no stage " + name);
  }
};

// Milliseconds since the epoch of a recorded time (2026-11-24T10:52:05.961Z).
int64_t ms_of(const json& iso) {
  auto text = iso.get<std::string>();
  std::tm tm{};
  strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  return static_cast<int64_t>(timegm(&tm)) * 1000 + std::stoi(text.substr(20, 3));
}

int64_t started(const json& s) { return ms_of(s["started_at"]); }
int64_t finished(const json& s) { return ms_of(s["finished_at"]); }

const char* diamond = R"(name: diamond
max_parallel: %d
stages:
  - name: a
    shell: "true"
  - name: b
    depends_on: [a]
    shell: "sleep 1"
  - name: c
    depends_on: [a]
    shell: "sleep 1"
  - name: d
    depends_on: [b, c]
    shell: "true"
)";

std::string with_parallel(int n) {
  char buf[1024];
  std::snprintf(buf, sizeof buf, diamond, n);
  return buf;
}

} // namespace

TEST_F(Graph, ADiamondRunsItsMiddleStagesAtOnceAndTheLastAfterBoth) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run(with_parallel(2));
  auto wall = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_LT(wall, 1800ms) << "b and c (1 s each) ran one after the other";
  auto m = metadata();
  const auto &b = stage(m, "b"), &c = stage(m, "c"), &d = stage(m, "d");
  EXPECT_LT(started(c), finished(b)) << "b and c overlap";
  EXPECT_LT(started(b), finished(c));
  EXPECT_GE(started(d), finished(b)) << "d starts after b has ended";
  EXPECT_GE(started(d), finished(c)) << "d starts after c has ended";
  EXPECT_EQ(d["depends_on"], json::array({"b", "c"}));
  EXPECT_EQ(m["options"]["max_parallel"], 2);
}

TEST_F(Graph, MaxParallelOneSerialisesTheDiamond) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run(with_parallel(1));
  auto wall = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_GE(wall, 2000ms);
  auto m = metadata();
  const auto &b = stage(m, "b"), &c = stage(m, "c");
  EXPECT_GE(started(c), finished(b)) << "c started while b ran";
}

TEST_F(Graph, DryRunPrintsTheWaves) {
  auto r = run(with_parallel(2), {"--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("4 stage(s) in 3 wave(s), at most 2 at once, on_failure stop"),
            std::string::npos)
    << r.out;
  EXPECT_NE(r.out.find("  wave 1: a\n  wave 2: b, c\n  wave 3: d\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("after b, c"), std::string::npos) << r.out;
  EXPECT_FALSE(exists(out()));
}

// events --follow on a local store: the run's events as they come, ending
// with the run (no coordinator involved: -o is read).
TEST_F(Graph, EventsFollowReadsALocalStoreUntilTheRunEnds) {
  auto file = pipeline("name: slowish\nstages:\n  - name: a\n    shell: \"sleep 1\"\n"
                       "  - name: b\n    shell: \"true\"\n");
  troupe_process p({"run", file, "--output", out()}, tmp.path());
  std::string id;
  ASSERT_TRUE(p.wait_until(
    [&] {
      auto r = run_troupe({"runs", "-o", out(), "--json"}, tmp.path());
      auto j = json::parse(r.out, nullptr, false);
      if (!j.is_object() || j["runs"].empty())
        return false;
      id = j["runs"][0]["run_id"].get<std::string>();
      return true;
    },
    20s));
  auto followed = run_troupe({"events", id, "-o", out(), "--follow"}, tmp.path());
  EXPECT_EQ(followed.exit_code, 0) << followed.err;
  EXPECT_NE(followed.out.find("b#1"), std::string::npos) << followed.out;
  EXPECT_NE(followed.out.find("run succeeded"), std::string::npos) << followed.out;
  EXPECT_EQ(p.wait().exit_code, 0);
}

// The dry run shows the real plan: params substituted, matrix instances
// expanded, probes in their order; nothing is created.
TEST_F(Graph, DryRunShowsParamsMatrixAndProbesSubstituted) {
  auto file = pipeline(R"(name: dr
params:
  date: { default: today }
probes:
  - name: disk
    shell: "df -h ."
  - name: listing
    run: [ls, "${run.dir}"]
stages:
  - name: fetch
    run: [echo, "${params.date}"]
  - name: shard
    matrix: { n: [1, 2] }
    shell: "echo shard ${matrix.n} of ${params.date}"
)");
  auto r = run_troupe({"run", file, "--dry-run", "--param", "date=2026-12-01", "--output", out()},
                      tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("param date = 2026-12-01\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  wave 2: shard[n=1], shard[n=2]\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  probes, in this order, before the first stage and after the last:\n"
                       "    1. probes/disk      /bin/sh -c 'df -h .'\n"
                       "    2. probes/listing   ls '" + out() + "/<run folder>'\n"),
            std::string::npos)
    << r.out;
  EXPECT_NE(r.out.find("      echo 2026-12-01\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("      /bin/sh -c 'echo shard 1 of 2026-12-01'\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("      /bin/sh -c 'echo shard 2 of 2026-12-01'\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("${"), std::string::npos) << "no template left: " << r.out;
  EXPECT_FALSE(exists(out()));
}

// a -> (b fails, c sleeps) ; d needs b and c ; e needs c only.
std::string failing(const std::string& on_failure) {
  return "name: f\nmax_parallel: 4\non_failure: " + on_failure + R"(
stages:
  - name: a
    shell: "true"
  - name: b
    depends_on: [a]
    shell: "exit 3"
  - name: c
    depends_on: [a]
    shell: "sleep 0.5"
  - name: d
    depends_on: [b, c]
    shell: "true"
  - name: e
    depends_on: [c]
    shell: "true"
)";
}

TEST_F(Graph, FailFastLetsRunningStagesFinishAndStartsNothingNew) {
  auto r = run(failing("stop"));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto m = metadata();
  EXPECT_EQ(stage(m, "b")["status"], "failed");
  EXPECT_EQ(stage(m, "c")["status"], "succeeded") << "a running stage finishes";
  for (auto name : {"d", "e"}) {
    EXPECT_EQ(stage(m, name)["status"], "skipped") << name;
    EXPECT_EQ(stage(m, name)["error"], "not run: stage 'b' failed") << name;
  }
  EXPECT_EQ(m["status"], "failed");
}

TEST_F(Graph, OnFailureContinueSkipsOnlyWhatDependsOnTheFailedStage) {
  auto r = run(failing("continue"));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto m = metadata();
  EXPECT_EQ(stage(m, "b")["status"], "failed");
  EXPECT_EQ(stage(m, "d")["status"], "skipped");
  EXPECT_EQ(stage(m, "d")["error"], "not run: depends on 'b', which failed");
  EXPECT_EQ(stage(m, "e")["status"], "succeeded") << "e needs only c";
  EXPECT_EQ(m["status"], "failed");
  EXPECT_EQ(m["options"]["on_failure"], "continue");
}

TEST_F(Graph, CancelStopsEveryRunningStageTree) {
  auto p = pipeline(R"(name: three
max_parallel: 3
stages:
  - name: x
    depends_on: []
    shell: "sleep 300 & sleep 300; wait"
  - name: y
    depends_on: []
    shell: "sleep 300 & sleep 300; wait"
  - name: z
    depends_on: []
    shell: "sleep 300 & sleep 300; wait"
)");
  troupe_process t{{"run", p, "--output", out()}, tmp.path()};
  std::string run_id;
  ASSERT_TRUE(t.wait_until(
    [&] {
      auto dir = single_run_dir(out());
      if (dir.empty() || !exists(dir + "/metadata.json"))
        return false;
      auto m = read_json(dir + "/metadata.json");
      run_id = m["run_id"];
      for (auto name : {"x", "y", "z"})
        if (stage(m, name)["pid"].is_null())
          return false;
      // The shell and its two sleeps in each stage.
      return processes_of_run(run_id).size() >= 9;
    },
    10s))
    << "three stages did not start at once";
  auto t0 = std::chrono::steady_clock::now();
  ::kill(t.pid(), SIGTERM);
  auto r = t.wait(15s);
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
  EXPECT_TRUE(processes_of_run(run_id).empty()) << "a process of the run survived";
  auto m = metadata();
  EXPECT_EQ(m["status"], "cancelled");
  for (auto name : {"x", "y", "z"})
    EXPECT_EQ(stage(m, name)["status"], "cancelled") << name;
}

TEST_F(Graph, TwoStagesWriting20MBAtOnceKeepByteExactLogs) {
  const size_t chunks = 320;  // 320 x 64 KiB = 20 MiB each
  auto emit = "run: [\"" + std::string(TROUPE_EMITTER) + "\", \"" + std::to_string(chunks) + "\"]";
  auto r = run("name: twins\nmax_parallel: 2\nstages:\n"
               "  - name: left\n    depends_on: []\n    " + emit + "\n"
               "  - name: right\n    depends_on: []\n    " + emit + "\n",
               {"--sample-interval", "100ms"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string want_out, want_err;
  for (size_t i = 0; i < chunks; ++i) {
    want_out += emitter_stdout_chunk(i);
    want_err += emitter_stderr_line(i);
  }
  auto dir = single_run_dir(out());
  for (auto name : {"left", "right"}) {
    auto got = read_file(dir + "/logs/" + name + ".stdout.log");
    ASSERT_EQ(got.size(), want_out.size()) << name;
    EXPECT_TRUE(got == want_out) << name << "'s stdout log differs from what it wrote";
    EXPECT_EQ(read_file(dir + "/logs/" + name + ".stderr.log"), want_err) << name;
  }
  auto m = metadata();
  EXPECT_LT(started(stage(m, "right")), finished(stage(m, "left"))) << "they ran at once";
}

TEST_F(Graph, TraceLinesOfConcurrentStagesBelongToTheirOwnStage) {
  // big holds 200 MiB for 1.5 s, small 8 MiB for as long, at the same time.
  auto r = run("name: rss\nmax_parallel: 2\nstages:\n"
               "  - name: big\n    depends_on: []\n    run: [" + touch_memory + ", \"200\", \"1500\"]\n"
               "  - name: small\n    depends_on: []\n    run: [" + touch_memory + ", \"8\", \"1500\"]\n",
               {"--sample-interval", "100ms"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = read_jsonl(single_run_dir(out()) + "/resource_trace.jsonl");
  int big = 0, small = 0;
  for (auto& l : lines) {
    if (l["phase"] != "sample" || l["process"]["pids"].empty())
      continue;
    auto rss = l["process"]["rss_bytes"].get<int64_t>();
    if (l["stage"] == "big" && rss > (150 << 20))
      ++big;
    if (l["stage"] == "small") {
      ++small;
      EXPECT_LT(rss, 64 << 20) << "a sample of big's tree was recorded as small's: " << l.dump();
    }
  }
  EXPECT_GE(big, 3) << "big's samples show its 200 MiB";
  EXPECT_GE(small, 3);
  auto m = metadata();
  EXPECT_GT(stage(m, "big")["resources"]["peak_rss_bytes"].get<int64_t>(), 200 << 20);
  EXPECT_LT(stage(m, "small")["resources"]["peak_rss_bytes"].get<int64_t>(), 64 << 20);
}

TEST_F(Graph, KilledMidGraphTheRecordParsesAndResumeRerunsOnlyWhatWasInterrupted) {
  auto marker = tmp.path() + "/slow-started-once";
  auto p = pipeline(R"(name: resumable-graph
resume: true
max_parallel: 2
stages:
  - name: a
    shell: "echo a >> )" + tmp.path() + R"(/a.count"
  - name: quick
    depends_on: [a]
    shell: "echo q >> )" + tmp.path() + R"(/quick.count"
  - name: slow
    depends_on: [a]
    shell: "if [ -e )" + marker + R"( ]; then exit 0; fi; touch )" + marker + R"(; sleep 300"
  - name: last
    depends_on: [quick, slow]
    shell: "echo l >> )" + tmp.path() + R"(/last.count"
)");
  {
    troupe_process t{{"run", p, "--output", out()}, tmp.path()};
    ASSERT_TRUE(t.wait_until(
      [&] {
        auto dir = single_run_dir(out());
        if (dir.empty() || !exists(marker))
          return false;
        auto m = read_json(dir + "/metadata.json");
        return stage(m, "quick")["status"] == "succeeded";
      },
      10s));
    ::kill(t.pid(), SIGKILL);
    t.wait(5s);
  }
  auto m = metadata();  // parses: the last complete version
  EXPECT_EQ(m["status"], "running");
  EXPECT_EQ(stage(m, "slow")["status"], "running");
  auto slow_pid = stage(m, "slow")["pid"];
  if (slow_pid.is_number())
    ::kill(-slow_pid.get<int>(), SIGKILL);  // its group outlives a SIGKILLed troupe
  auto r = run_troupe({"run", p, "--output", out()}, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto after = metadata();
  EXPECT_EQ(after["status"], "succeeded");
  EXPECT_EQ(read_file(tmp.path() + "/a.count"), "a\n") << "a ran again";
  EXPECT_EQ(read_file(tmp.path() + "/quick.count"), "q\n") << "quick ran again";
  EXPECT_EQ(read_file(tmp.path() + "/last.count"), "l\n");
  EXPECT_EQ(stage(after, "slow")["attempts"].size(), 2u) << "slow: interrupted, then again";
  EXPECT_EQ(stage(after, "quick")["attempts"].size(), 1u);
}

TEST_F(Graph, MatrixInstancesRunWithTheirValuesAndDependentsWaitForAll) {
  auto r = run(R"(name: shards
max_parallel: 4
stages:
  - name: work
    matrix: { shard: [1, 2], model: [small, large] }
    run: [sh, -c, "echo $TROUPE_MATRIX_SHARD ${matrix.model} $TROUPE_STAGE; sleep 0.3"]
  - name: merge
    shell: "true"
)");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto m = metadata();
  ASSERT_EQ(m["stages"].size(), 5u);
  auto dir = single_run_dir(out());
  EXPECT_EQ(read_file(dir + "/logs/work.shard-2.model-small.stdout.log"),
            "2 small work[shard=2,model=small]\n");
  const auto& inst = stage(m, "work[shard=1,model=large]");
  EXPECT_EQ(inst["matrix"], (json{{"shard", "1"}, {"model", "large"}}));
  EXPECT_EQ(inst["stdout_log"], "logs/work.shard-1.model-large.stdout.log");
  const auto& merge = stage(m, "merge");
  EXPECT_EQ(merge["depends_on"].size(), 4u);
  for (auto& s : m["stages"]) {
    if (s["name"] == "merge")
      continue;
    EXPECT_GE(started(merge), finished(s)) << s["name"] << " ended after merge started";
  }
}

TEST_F(Graph, ParamsAreSubstitutedRecordedAndRequired) {
  auto yaml = R"(name: params
params:
  limit: { required: true }
  date: { default: today }
stages:
  - name: a
    run: [echo, "${params.limit}", "${params.date}", "$HOME", "${run.id}"]
)";
  auto missing = run(yaml);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("parameter 'limit' is required by"), std::string::npos)
    << missing.err;
  EXPECT_FALSE(exists(out())) << "nothing is created for a run that cannot start";
  auto r = run(yaml, {"--param", "limit=10"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto m = metadata();
  EXPECT_EQ(m["params"], (json{{"date", "today"}, {"limit", "10"}}));
  EXPECT_EQ(read_file(single_run_dir(out()) + "/logs/a.stdout.log"),
            "10 today $HOME " + m["run_id"].get<std::string>() + "\n")
    << "a literal $HOME stays literal";
  auto id = m["run_id"].get<std::string>();
  auto show = run_troupe({"show", id, "-o", out(), "--json"}, tmp.path());
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_EQ(json::parse(show.out)["params"], (json{{"date", "today"}, {"limit", "10"}}))
    << "the store has them too";
  auto text = run_troupe({"show", id, "-o", out()}, tmp.path());
  EXPECT_NE(text.out.find("params    date=today, limit=10"), std::string::npos) << text.out;
  auto bad = run(yaml, {"--param", "limit"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--param 'limit': give NAME=VALUE"), std::string::npos) << bad.err;
}

TEST_F(Graph, ProbesRecordTheStateBeforeAfterAndTheDeltaAndNeverFailTheRun) {
  auto data = tmp.write("rows.txt", "a\nb\nc\n");
  std::string yaml = "name: probed\nprobes:\n"
                     "  - name: rows\n"
                     "    shell: \"printf '{\\\"lines\\\": %d, \\\"file\\\": \\\"rows\\\"}' $(wc -l < "
                     + data + ")\"\n"
                     "  - name: broken\n    shell: \"echo not json\"\n"
                     "  - name: dies\n    shell: \"exit 3\"\n"
                     "stages:\n"
                     "  - name: add\n    shell: \"echo d >> " + data + "; echo e >> " + data + "\"\n"
                     "  - name: last\n    shell: \"exit ${params.code}\"\n"
                     "params:\n  code: { default: \"0\" }\n";
  auto r = run(yaml);
  ASSERT_EQ(r.exit_code, 0) << "a probe never fails the run\n" << r.out << r.err;
  auto m = metadata();
  EXPECT_EQ(m["state_before"]["rows"], (json{{"lines", 3}, {"file", "rows"}}));
  EXPECT_EQ(m["state_after"]["rows"], (json{{"lines", 5}, {"file", "rows"}}));
  EXPECT_EQ(m["delta"]["rows"], (json{{"lines", 2}})) << "numeric keys only";
  EXPECT_TRUE(m["state_before"]["broken"].is_null());
  std::map<std::string, json> before;
  for (auto& p : m["probes"])
    if (p["phase"] == "before")
      before[p["name"]] = p;
  EXPECT_EQ(before["broken"]["status"], "invalid");
  EXPECT_EQ(before["broken"]["error"], "printed 'not json ', not one JSON object");
  EXPECT_EQ(before["dies"]["status"], "failed");
  EXPECT_EQ(before["dies"]["exit_code"], 3);
  auto dir = single_run_dir(out());
  EXPECT_EQ(read_file(dir + "/logs/probes/rows.before.stdout.log"),
            "{\"lines\": 3, \"file\": \"rows\"}");
  EXPECT_EQ(read_file(dir + "/logs/probes/rows.after.stdout.log"),
            "{\"lines\": 5, \"file\": \"rows\"}");
  auto id = m["run_id"].get<std::string>();
  auto shown = json::parse(run_troupe({"show", id, "-o", out(), "--json"}, tmp.path()).out);
  EXPECT_EQ(shown["delta"]["rows"]["lines"], 2) << "the store has the state too";
  auto text = run_troupe({"show", id, "-o", out()}, tmp.path()).out;
  // The table's lines, as words: PROBE KEY BEFORE AFTER DELTA.
  auto has_line = [&](std::vector<std::string> want) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream words(line);
      std::vector<std::string> got;
      for (std::string w; words >> w && got.size() < want.size();)
        got.push_back(w);
      if (got == want)
        return true;
    }
    return false;
  };
  EXPECT_TRUE(has_line({"rows", "lines", "3", "5", "+2"})) << text;
  EXPECT_TRUE(has_line({"broken", "(before)", "invalid"})) << text;

  // After a failed stage the "after" probes still run.
  std::system(("rm -rf '" + out() + "'").c_str());
  auto failed = run(yaml, {"--param", "code=4"});
  EXPECT_EQ(failed.exit_code, 1);
  auto fm = metadata();
  EXPECT_EQ(fm["status"], "failed");
  EXPECT_EQ(fm["state_before"]["rows"]["lines"], 5);
  EXPECT_EQ(fm["state_after"]["rows"]["lines"], 7);
  EXPECT_EQ(fm["delta"]["rows"]["lines"], 2);
}

// rerun takes what show takes: a unique prefix or the run folder's name; an
// ambiguous prefix lists the candidates.
TEST_F(Graph, RerunTakesAPrefixOrAFolderAndListsAnAmbiguousPrefixsRuns) {
  auto file = pipeline("name: once\nstages:\n  - name: a\n    shell: \"test -e " + tmp.path()
                       + "/ok\"\n");
  ASSERT_EQ(run_troupe({"run", file, "--output", out()}, tmp.path()).exit_code, 1);
  // Two runs whose ids share at least 8 characters (UUIDv7: the same
  // ~65 s); a pair that straddles such a boundary is followed by another run.
  json runs;
  std::string a, b;
  size_t n = 0;
  for (int tries = 0; tries < 3 && n < 8; ++tries) {
    ASSERT_EQ(run_troupe({"run", file, "--output", out()}, tmp.path()).exit_code, 1);
    runs = json::parse(run_troupe({"runs", "-o", out(), "--json"}, tmp.path()).out)["runs"];
    a = runs[0]["run_id"].get<std::string>();
    b = runs[1]["run_id"].get<std::string>();
    for (n = 0; a[n] == b[n];)
      ++n;
  }
  ASSERT_GE(n, 8u) << a << " " << b;
  auto amb = run_troupe({"rerun", a.substr(0, n), "-o", out()}, tmp.path());
  EXPECT_EQ(amb.exit_code, 2);
  EXPECT_NE(amb.err.find("is ambiguous; it matches:"), std::string::npos) << amb.err;
  EXPECT_NE(amb.err.find(a), std::string::npos) << amb.err;
  EXPECT_NE(amb.err.find(b), std::string::npos) << amb.err;
  ::close(::open((tmp.path() + "/ok").c_str(), O_CREAT | O_WRONLY, 0644));
  auto folder = runs[1]["run_dir"].get<std::string>();
  folder = folder.substr(folder.rfind('/') + 1);
  auto by_folder = run_troupe({"rerun", folder, "-o", out()}, tmp.path());
  EXPECT_EQ(by_folder.exit_code, 0) << by_folder.out << by_folder.err;
  EXPECT_NE(by_folder.out.find(b), std::string::npos) << by_folder.out;
}

TEST_F(Graph, RerunFailedThenFromAStageRunsOnlyWhatItShouldAndKeepsEarlierLogs) {
  auto fix = tmp.path() + "/fixed";
  auto count = [&](const std::string& name) { return read_file(tmp.path() + "/" + name + ".count"); };
  auto file = pipeline(R"(name: reruns
on_failure: continue
stages:
  - name: a
    shell: "echo a >> )" + tmp.path() + R"(/a.count"
  - name: b
    shell: "echo b >> )" + tmp.path() + R"(/b.count; echo try-$TROUPE_ATTEMPT; test -e )" + fix + R"("
  - name: c
    shell: "echo c >> )" + tmp.path() + R"(/c.count"
  - name: d
    depends_on: [a]
    shell: "echo d >> )" + tmp.path() + R"(/d.count"
)");
  auto first = run_troupe({"run", file, "--output", out()}, tmp.path());
  ASSERT_EQ(first.exit_code, 1) << first.out << first.err;
  auto m = metadata();
  auto id = m["run_id"].get<std::string>();
  EXPECT_EQ(stage(m, "c")["status"], "skipped");
  auto dir = single_run_dir(out());
  auto b_log = read_file(dir + "/logs/b.stdout.log");
  EXPECT_EQ(b_log, "try-1\n");

  // Not while the file says something else than it did.
  std::ofstream(file, std::ios::app) << "# edited\n";
  auto changed = run_troupe({"rerun", id, "-o", out()}, tmp.path());
  EXPECT_EQ(changed.exit_code, 2);
  EXPECT_NE(changed.err.find("has changed since run " + id), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("--allow-changed"), std::string::npos) << changed.err;

  ::close(::open(fix.c_str(), O_CREAT | O_WRONLY, 0644));
  auto again = run_troupe({"rerun", id.substr(0, 12), "-o", out(), "--allow-changed", "--reason",
                           "input fixed"},
                          tmp.path());
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(count("a"), "a\n") << "a succeeded: not run again";
  EXPECT_EQ(count("d"), "d\n") << "d succeeded: not run again";
  EXPECT_EQ(count("b"), "b\nb\n");
  EXPECT_EQ(count("c"), "c\n") << "c depends on b: it runs now";
  auto after = metadata();
  EXPECT_EQ(after["run_id"], id) << "the same run";
  EXPECT_EQ(after["status"], "succeeded");
  EXPECT_EQ(stage(after, "b")["attempts"].size(), 2u);
  EXPECT_EQ(read_file(dir + "/logs/b.stdout.log"), b_log) << "the earlier log is untouched";
  EXPECT_EQ(read_file(dir + "/logs/b.attempt-2.stdout.log"), "try-2\n");
  EXPECT_EQ(read_json(dir + "/metadata.rerun-1.json")["status"], "failed")
    << "the record before the rerun is kept";
  // Its attempts count within the rerun's own budget, and say so.
  EXPECT_NE(again.out.find("rerun attempt 1/1, attempt 2 overall"), std::string::npos) << again.out;
  EXPECT_EQ(again.out.find("attempt 2/2"), std::string::npos) << again.out;
  auto events = run_troupe({"events", id, "-o", out()}, tmp.path()).out;
  EXPECT_NE(events.find("rerun (--failed) by "), std::string::npos) << events;
  EXPECT_NE(events.find("rerun attempt 1 of 1, attempt 2 overall, started"), std::string::npos)
    << events;
  EXPECT_NE(events.find("info   run                    rerun (--failed)"), std::string::npos)
    << "a rerun is news, not a warning:\n" << events;
  EXPECT_NE(events.find(": b, c; reason: input fixed"), std::string::npos) << events;

  // --from a: a and everything after it (b, c, d), a third time for b.
  auto from = run_troupe({"rerun", id, "-o", out(), "--from", "a", "--allow-changed"}, tmp.path());
  ASSERT_EQ(from.exit_code, 0) << from.out << from.err;
  EXPECT_EQ(count("a"), "a\na\n");
  EXPECT_EQ(count("b"), "b\nb\nb\n");
  EXPECT_EQ(count("c"), "c\nc\n");
  EXPECT_EQ(count("d"), "d\nd\n");
  EXPECT_EQ(stage(metadata(), "b")["attempts"].size(), 3u);

  auto nothing = run_troupe({"rerun", id, "-o", out(), "--allow-changed"}, tmp.path());
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("has no failed, timed out, cancelled or skipped stage"),
            std::string::npos)
    << nothing.err;
  auto unknown = run_troupe({"rerun", "nope", "-o", out()}, tmp.path());
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("no run nope in "), std::string::npos) << unknown.err;
}

TEST_F(Graph, TheNodesSlotsBoundARunsStagesBesideMaxParallel) {
  auto r = run(R"(name: slots
max_parallel: 3
stages:
  - name: x
    depends_on: []
    shell: "sleep 0.4"
  - name: y
    depends_on: []
    shell: "sleep 0.4"
  - name: z
    depends_on: []
    shell: "sleep 0.4"
)",
               {"--node-slots", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto m = metadata();
  EXPECT_EQ(m["options"]["max_parallel"], 3) << "the pipeline's; the node holds its own bound";
  // At no recorded instant were three running.
  std::vector<std::pair<int64_t, int>> edges;
  for (auto name : {"x", "y", "z"}) {
    edges.emplace_back(started(stage(m, name)), 1);
    edges.emplace_back(finished(stage(m, name)), -1);
  }
  std::sort(edges.begin(), edges.end());  // an end before a start at the same ms
  int now = 0, most = 0;
  for (auto& [t, d] : edges)
    most = std::max(most, now += d);
  EXPECT_EQ(most, 2);
  auto events = run_troupe({"events", single_run_dir(out()), "-o", out()}, tmp.path());
  EXPECT_NE(events.out.find("waiting for the node: 2 of 2 CPU slots in use, it needs 1"),
            std::string::npos)
    << events.out;
}

TEST_F(Graph, ARunWhoseTroupeWasKilledIsSettledAndRerunInOneCommand) {
  auto marker = tmp.path() + "/second";
  auto p = pipeline(R"(name: killed
stages:
  - name: a
    shell: "true"
  - name: slow
    shell: "if [ -e )" + marker + R"( ]; then exit 0; fi; sleep 300"
)");
  {
    troupe_process t{{"run", p, "--output", out()}, tmp.path()};
    ASSERT_TRUE(t.wait_until(
      [&] {
        auto dir = single_run_dir(out());
        return !dir.empty() && exists(dir + "/metadata.json")
               && stage(read_json(dir + "/metadata.json"), "slow")["pid"].is_number();
      },
      10s));
    ::kill(t.pid(), SIGKILL);
    t.wait(5s);
  }
  auto id = metadata()["run_id"].get<std::string>();
  ::close(::open(marker.c_str(), O_CREAT | O_WRONLY, 0644));
  auto r = run_troupe({"rerun", id, "-o", out()}, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("recovery: run " + id + " failed"), std::string::npos) << r.err;
  auto m = metadata();
  EXPECT_EQ(m["status"], "succeeded");
  EXPECT_EQ(stage(m, "slow")["attempts"].size(), 2u);
  EXPECT_EQ(stage(m, "a")["attempts"].size(), 1u);
  EXPECT_TRUE(processes_of_run(id).empty()) << "the killed run's sleep was cleaned up";
}
