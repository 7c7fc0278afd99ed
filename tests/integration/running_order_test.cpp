// Integration: the real troupe binary on temporary folders. Real processes,
// real signals, real files; every assertion reads what troupe left on disk.
#include "../support/emitter_pattern.hpp"
#include "../support/troupe_process.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>

#include <fstream>
#include <string>

using namespace troupe::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string source_dir = TROUPE_SOURCE_DIR;

struct RunningOrder : ::testing::Test {
  temp_dir tmp;
  std::string out() const { return tmp.path() + "/out"; }
  std::string pipeline(const std::string& yaml) const { return tmp.write("p.yaml", yaml); }

  troupe_result run(std::vector<std::string> extra, const std::string& yaml,
                    const std::vector<std::string>& env = {}) {
    std::vector<std::string> args{"run", pipeline(yaml), "--output", out()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_troupe(args, tmp.path(), env);
  }

  json metadata() { return read_json(single_run_dir(out()) + "/metadata.json"); }
  std::vector<json> trace() { return read_jsonl(single_run_dir(out()) + "/resource_trace.jsonl"); }

  static const json& stage(const json& m, const std::string& name) {
    for (const auto& s : m["stages"])
      if (s["name"] == name)
        return s;
    throw std::runtime_error("no stage " + name);
  }
};

// Every executed stage has exactly one before and one after line; before has
// no process figures, after has them; lines are in before < samples < after order.
void expect_before_after(const json& m, const std::vector<json>& lines) {
  for (const auto& s : m["stages"]) {
    if (s["started_at"].is_null())
      continue;
    std::vector<std::string> phases;
    for (const auto& l : lines)
      if (l["stage"] == s["name"])
        phases.push_back(l["phase"]);
    ASSERT_GE(phases.size(), 2u) << s["name"];
    EXPECT_EQ(phases.front(), "before") << s["name"];
    EXPECT_EQ(phases.back(), "after") << s["name"];
    EXPECT_EQ(std::count(phases.begin(), phases.end(), "before"), 1) << s["name"];
    EXPECT_EQ(std::count(phases.begin(), phases.end(), "after"), 1) << s["name"];
  }
  for (const auto& l : lines) {
    for (auto key : {"ts", "run_id", "stage", "phase", "host", "process", "gpus", "top"})
      EXPECT_TRUE(l.contains(key)) << key << " missing in " << l.dump();
    EXPECT_EQ(l["run_id"], m["run_id"]);
    if (l["phase"] == "before")
      EXPECT_TRUE(l["process"].is_null());
    else
      EXPECT_TRUE(l["process"].is_object());
    EXPECT_GT(l["host"]["mem_total_bytes"].get<int64_t>(), 0);
    EXPECT_LE(l["top"].size(), 5u);
  }
}

} // namespace

TEST_F(RunningOrder, CanaryRunsAndLeavesTheArtifactsContract) {
  auto r = run_troupe({"run", source_dir + "/configs/pipelines/canary.yaml", "--output", out()},
                      tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto dir = single_run_dir(out());
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')), dir) << "first line is the run folder";
  auto m = metadata();
  for (auto key : {"run_id", "pipeline", "status", "started_at", "finished_at", "host",
                   "options", "stages", "totals"})
    EXPECT_TRUE(m.contains(key)) << key;
  EXPECT_EQ(m["status"], "succeeded");
  EXPECT_EQ(m["pipeline"], "canary");
  EXPECT_GT(m["host"]["pus"].get<int>(), 0) << "hwloc topology recorded";
  ASSERT_EQ(m["stages"].size(), 7u);
  std::vector<std::string> order;
  for (const auto& s : m["stages"]) {
    order.push_back(s["name"]);
    for (auto key : {"name", "status", "started_at", "finished_at", "duration_s", "exit_code",
                     "signal", "failure_code", "error", "stdout_log", "stderr_log",
                     "resources", "top_processes"})
      EXPECT_TRUE(s.contains(key)) << s["name"] << " lacks " << key;
  }
  EXPECT_EQ(order, (std::vector<std::string>{"crawl", "normalize", "parse", "editorial-checks",
                                             "publish", "training", "kg-ingest"}));
  for (auto name : {"crawl", "normalize", "parse", "editorial-checks", "publish"}) {
    const auto& s = stage(m, name);
    EXPECT_EQ(s["status"], "succeeded") << name;
    EXPECT_EQ(s["exit_code"], 0) << name;
    EXPECT_TRUE(s["failure_code"].is_null()) << name;
    EXPECT_TRUE(exists(dir + "/" + s["stdout_log"].get<std::string>())) << name;
    EXPECT_TRUE(s["resources"]["before"].is_object()) << name;
    EXPECT_TRUE(s["resources"]["after"].is_object()) << name;
    EXPECT_GT(s["resources"]["peak_rss_bytes"].get<int64_t>(), 0) << name;
    EXPECT_EQ(s["top_processes"]["before"].size(), 5u) << name;
  }
  EXPECT_EQ(stage(m, "training")["status"], "skipped");
  EXPECT_EQ(stage(m, "kg-ingest")["status"], "skipped");
  EXPECT_GT(m["totals"]["cpu_seconds"].get<double>(), 0);
  EXPECT_GT(m["totals"]["wall_seconds"].get<double>(), 0);
  // The stages did their work.
  EXPECT_NE(read_file(dir + "/work/site/index.html").find("<li>"), std::string::npos);
  EXPECT_EQ(read_file(dir + "/logs/normalize.stdout.log").substr(0, 12), "normalized 5");
  expect_before_after(m, trace());
}

TEST_F(RunningOrder, CanaryFailsVariantStopsAtEditorialChecks) {
  auto r = run_troupe(
    {"run", source_dir + "/configs/pipelines/canary-fails.yaml", "--output", out()}, tmp.path());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto m = metadata();
  EXPECT_EQ(m["status"], "failed");
  const auto& checks = stage(m, "editorial-checks");
  EXPECT_EQ(checks["status"], "failed");
  EXPECT_EQ(checks["exit_code"], 1);
  EXPECT_EQ(checks["failure_code"], "exit_nonzero");
  EXPECT_NE(read_file(single_run_dir(out()) + "/logs/editorial-checks.stderr.log").find("a0007"),
            std::string::npos);
  EXPECT_EQ(stage(m, "publish")["status"], "skipped");
  EXPECT_TRUE(stage(m, "publish")["started_at"].is_null());
}

TEST_F(RunningOrder, OptionalStagesRunOnlyWhenEnabled) {
  auto yaml = R"(name: opt
stages:
  - name: base
    shell: "echo base"
  - name: extra
    optional: true
    shell: "echo extra > $TROUPE_RUN_DIR/extra.txt"
  - name: other
    optional: true
    shell: "echo other > $TROUPE_RUN_DIR/other.txt"
)";
  auto r = run({"--enable", "extra"}, yaml);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = metadata();
  EXPECT_EQ(stage(m, "extra")["status"], "succeeded");
  EXPECT_EQ(stage(m, "other")["status"], "skipped");
  EXPECT_TRUE(exists(single_run_dir(out()) + "/extra.txt"));
  EXPECT_FALSE(exists(single_run_dir(out()) + "/other.txt"));
  EXPECT_EQ(m["options"]["enabled"], json::array({"extra"}));

  auto bad = run({"--enable", "nosuch"}, yaml);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--enable nosuch"), std::string::npos) << bad.err;
}

TEST_F(RunningOrder, LogsAreByteExactFor20MBWithInterleavedStderr) {
  const size_t chunks = 320;  // 320 x 64 KiB = 20 MiB
  auto r = run({"--sample-interval", "100ms"},
               "name: big\nstages:\n  - name: emit\n    run: [\"" + std::string(TROUPE_EMITTER)
                 + "\", \"" + std::to_string(chunks) + "\"]\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto dir = single_run_dir(out());
  auto got_out = read_file(dir + "/logs/emit.stdout.log");
  auto got_err = read_file(dir + "/logs/emit.stderr.log");
  std::string want_out, want_err;
  for (size_t i = 0; i < chunks; ++i) {
    want_out += emitter_stdout_chunk(i);
    want_err += emitter_stderr_line(i);
  }
  ASSERT_EQ(got_out.size(), want_out.size());
  EXPECT_TRUE(got_out == want_out) << "stdout log differs from what the stage wrote";
  EXPECT_EQ(got_err, want_err);
}

TEST_F(RunningOrder, TimeoutKillsTheWholeTreeWithinTimeoutPlusGrace) {
  // The leader ignores SIGTERM (and so does its background grandchild, which
  // inherits SIG_IGN): only SIGKILL after the grace period ends them.
  auto yaml = R"(name: stubborn
stages:
  - name: stubborn
    shell: "trap '' TERM; sleep 300 & echo $! > $TROUPE_RUN_DIR/grandchild.pid; sleep 300"
    timeout: 1s
  - name: next
    shell: "true"
)";
  auto r = run({"--grace", "1s"}, yaml);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_LT(r.elapsed, 1s + 1s + 2s) << "timeout 1s + grace 1s, with 2s of slack";
  EXPECT_GE(r.elapsed, 2s);
  auto m = metadata();
  EXPECT_EQ(m["status"], "timed_out");
  const auto& s = stage(m, "stubborn");
  EXPECT_EQ(s["status"], "timed_out");
  EXPECT_EQ(s["failure_code"], "timeout");
  EXPECT_EQ(s["signal"], SIGKILL);
  EXPECT_EQ(stage(m, "next")["status"], "skipped");
  auto gc = std::stoi(read_file(single_run_dir(out()) + "/grandchild.pid"));
  EXPECT_FALSE(alive(gc)) << "grandchild " << gc << " survived";
  EXPECT_FALSE(alive(s["pid"].get<int>())) << "leader survived";
}

TEST_F(RunningOrder, FailFastSkipsTheRestAndRecordsTheExitCode) {
  auto r = run({}, R"(name: ff
stages:
  - name: a
    run: [sh, -c, "echo a"]
  - name: b
    run: [sh, -c, "echo to-stderr >&2; exit 7"]
  - name: c
    shell: "touch $TROUPE_RUN_DIR/c-ran"
)");
  EXPECT_EQ(r.exit_code, 1);
  auto m = metadata();
  EXPECT_EQ(stage(m, "a")["status"], "succeeded");
  EXPECT_EQ(stage(m, "b")["status"], "failed");
  EXPECT_EQ(stage(m, "b")["exit_code"], 7);
  EXPECT_EQ(stage(m, "b")["failure_code"], "exit_nonzero");
  EXPECT_EQ(stage(m, "c")["status"], "skipped");
  EXPECT_FALSE(exists(single_run_dir(out()) + "/c-ran"));
  EXPECT_EQ(read_file(single_run_dir(out()) + "/logs/b.stderr.log"), "to-stderr\n");
  EXPECT_NE(r.out.find("last lines of logs/b.stderr.log:\n      | to-stderr\n"), std::string::npos)
    << "the failed stage's stderr tail is shown:\n" << r.out;
}

TEST_F(RunningOrder, DryRunRunsNothing) {
  auto yaml = "name: dry\nstages:\n  - name: touch\n    shell: \"touch " + tmp.path()
              + "/marker\"\n";
  for (auto env : {std::vector<std::string>{}, std::vector<std::string>{"DRY_RUN=1"}}) {
    auto r = run(env.empty() ? std::vector<std::string>{"--dry-run"} : std::vector<std::string>{},
                 yaml, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("would run"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("touch"), std::string::npos) << r.out;
    EXPECT_FALSE(exists(tmp.path() + "/marker"));
    EXPECT_FALSE(exists(out())) << "dry run created the output folder";
  }
}

TEST_F(RunningOrder, ExitCodesForSuccessFailureUsageAndTimeout) {
  EXPECT_EQ(run({}, "name: ok\nstages:\n  - name: a\n    run: [\"true\"]\n").exit_code, 0);
  EXPECT_EQ(run({}, "name: no\nstages:\n  - name: a\n    run: [\"false\"]\n").exit_code, 1);
  EXPECT_EQ(run({}, "name: to\nstages:\n  - name: a\n    run: [sleep, \"5\"]\n    timeout: 200ms\n")
              .exit_code,
            3);
  EXPECT_EQ(run({"--grace", "soon"}, "name: ok\nstages:\n  - name: a\n    run: [\"true\"]\n")
              .exit_code,
            2);
  auto missing = run_troupe({"run", tmp.path() + "/nope.yaml"}, tmp.path());
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nope.yaml"), std::string::npos);
  EXPECT_EQ(run_troupe({"frobnicate"}, tmp.path()).exit_code, 2);
}

TEST_F(RunningOrder, BadPipelineIsRejectedBeforeAnythingRuns) {
  auto r = run({}, R"(name: bad
stages:
  - name: first
    shell: "touch marker-first"
  - name: second
    run: [x]
    tmeout: 5s
)");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("p.yaml:7:5: stages[1] (second).tmeout: unknown key"), std::string::npos)
    << r.err;
  EXPECT_FALSE(exists(out()));
  EXPECT_FALSE(exists(tmp.path() + "/marker-first"));
}

TEST_F(RunningOrder, SpawnFailureIsClassified) {
  auto r = run({}, "name: sf\nstages:\n  - name: a\n    run: [no-such-program-troupe]\n");
  EXPECT_EQ(r.exit_code, 1);
  auto m = metadata();
  const auto& s = stage(m, "a");
  EXPECT_EQ(s["failure_code"], "spawn_failed");
  EXPECT_NE(s["error"].get<std::string>().find("No such file"), std::string::npos) << s["error"];
}

TEST_F(RunningOrder, LeftoverBackgroundProcessesDoNotOutliveTheirStage) {
  auto r = run({"--grace", "2s"}, R"(name: bg
stages:
  - name: daemonish
    shell: "sleep 300 & echo $! > $TROUPE_RUN_DIR/bg.pid; echo started"
)");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(r.elapsed, 2s) << "SIGTERM suffices for sleep; no grace wait";
  auto m = metadata();
  const auto& s = stage(m, "daemonish");
  EXPECT_EQ(s["status"], "succeeded");
  EXPECT_EQ(s["leftovers_killed"], 1);
  EXPECT_FALSE(alive(std::stoi(read_file(single_run_dir(out()) + "/bg.pid"))));
}

TEST_F(RunningOrder, EnvironmentAndWorkingDirectory) {
  ::mkdir((tmp.path() + "/sub").c_str(), 0755);
  auto r = run({}, R"(name: env
defaults: { env: { A: from-defaults, B: from-defaults } }
stages:
  - name: show
    cwd: sub
    env: { B: from-stage }
    shell: "echo $A $B $TROUPE_STAGE; pwd; test -n \"$TROUPE_RUN_ID\" && test -d \"$TROUPE_RUN_DIR\""
)");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto log = read_file(single_run_dir(out()) + "/logs/show.stdout.log");
  EXPECT_EQ(log, "from-defaults from-stage show\n" + tmp.path() + "/sub\n");
}

TEST_F(RunningOrder, SigintSigtermAndSighupCancelTheRunningStage) {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    temp_dir local;
    auto p = local.write("p.yaml", R"(name: int
stages:
  - name: long
    shell: "sleep 300"
  - name: never
    shell: "true"
)");
    troupe_process t{{"run", p, "--output", local.path() + "/out", "--grace", "1s"}, local.path()};
    auto meta_path = [&] { return single_run_dir(local.path() + "/out") + "/metadata.json"; };
    int stage_pid = 0;
    ASSERT_TRUE(t.wait_until(
      [&] {
        try {
          auto m = read_json(meta_path());
          stage_pid = m["stages"][0]["pid"].is_number() ? m["stages"][0]["pid"].get<int>() : 0;
        } catch (...) {
        }
        return stage_pid > 0;
      },
      10s));
    ::kill(t.pid(), sig);
    auto r = t.wait(10s);
    EXPECT_EQ(r.exit_code, 130) << r.err;
    auto m = read_json(meta_path());
    EXPECT_EQ(m["status"], "cancelled");
    // The reason names the signal and who sent it (this test's process).
    std::string name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
    EXPECT_EQ(m["reason"].get<std::string>().rfind(
                "cancelled by " + name + " from process " + std::to_string(::getpid()), 0),
              0u)
      << m["reason"];
    EXPECT_EQ(m["stages"][0]["status"], "cancelled");
    EXPECT_EQ(m["stages"][0]["failure_code"], "cancelled");
    EXPECT_EQ(m["stages"][1]["status"], "skipped");
    EXPECT_FALSE(alive(stage_pid));
  }
}

TEST_F(RunningOrder, ArtifactsParseAfterTheRunnerIsKilledMidStage) {
  auto p = pipeline(R"(name: crash
stages:
  - name: first
    shell: "echo done"
  - name: slow
    shell: "echo partial; sleep 300"
)");
  troupe_process t{{"run", p, "--output", out(), "--sample-interval", "100ms"}, tmp.path()};
  auto trace_path = [&] { return single_run_dir(out()) + "/resource_trace.jsonl"; };
  ASSERT_TRUE(t.wait_until(
    [&] {
      auto text = read_file(trace_path());
      size_t samples = 0;
      for (size_t pos = 0; (pos = text.find("\"phase\":\"sample\"", pos)) != std::string::npos; ++pos)
        ++samples;
      return samples >= 3;
    },
    10s));
  ::kill(t.pid(), SIGKILL);
  auto r = t.wait(5s);
  EXPECT_EQ(r.exit_code, 128 + SIGKILL);
  auto m = metadata();  // parses: the last complete version
  EXPECT_EQ(m["status"], "running");
  EXPECT_EQ(stage(m, "first")["status"], "succeeded");
  const auto& slow = stage(m, "slow");
  EXPECT_EQ(slow["status"], "running");
  ASSERT_TRUE(slow["pid"].is_number());
  auto lines = trace();  // every line parses
  EXPECT_GE(lines.size(), 5u);  // first: before+after, slow: before + >= 3 samples
  // The stage's process group outlives a SIGKILLed troupe; clean it up.
  ::kill(-slow["pid"].get<int>(), SIGKILL);
}

TEST_F(RunningOrder, PeriodicSamplesCoverALongStageAndItsProcessTree) {
  auto r = run({"--sample-interval", "100ms"}, R"(name: samples
stages:
  - name: quick
    run: ["true"]
  - name: long
    shell: "sleep 1 & sleep 1; wait"
)");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = metadata();
  auto lines = trace();
  expect_before_after(m, lines);
  auto leader = stage(m, "long")["pid"].get<int>();
  int samples = 0, with_tree = 0;
  for (const auto& l : lines) {
    if (l["stage"] != "long" || l["phase"] != "sample")
      continue;
    ++samples;
    auto pids = l["process"]["pids"];
    if (std::find(pids.begin(), pids.end(), leader) != pids.end() && pids.size() >= 3)
      ++with_tree;
  }
  EXPECT_GE(samples, 5) << "1 s stage at 100 ms";
  EXPECT_GE(with_tree, 3) << "samples see the leader and its two sleeps";
  EXPECT_EQ(stage(m, "long")["resources"]["samples"], samples);

  temp_dir other;
  auto none = run_troupe({"run",
                          other.write("p.yaml", "name: nos\nstages:\n  - name: long\n"
                                                "    run: [sleep, \"0.5\"]\n"),
                          "--output", other.path() + "/out", "--sample-interval", "0"},
                         other.path());
  ASSERT_EQ(none.exit_code, 0) << none.err;
  auto none_lines = read_jsonl(single_run_dir(other.path() + "/out") + "/resource_trace.jsonl");
  ASSERT_EQ(none_lines.size(), 2u) << "interval 0: only before and after";
  EXPECT_EQ(none_lines[0]["phase"], "before");
  EXPECT_EQ(none_lines[1]["phase"], "after");
}

TEST_F(RunningOrder, ADoubleForkedDaemonDoesNotOutliveItsStage) {
  // setsid + orphaned at once: outside the process group and no longer a
  // descendant of the leader. Only a job cgroup still holds it.
  auto r = run({"--grace", "1s"}, R"(name: daemon
stages:
  - name: start-daemon
    shell: "(setsid sleep 300 & echo $! > $TROUPE_RUN_DIR/daemon.pid); echo started"
)");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = metadata();
  auto tracking = m["host"]["process_tracking"].get<std::string>();
  auto daemon = std::stoi(read_file(single_run_dir(out()) + "/daemon.pid"));
  if (tracking.rfind("cgroup", 0) != 0) {
    ::kill(daemon, SIGKILL);
    GTEST_SKIP() << "process tracking here: " << tracking;
  }
  EXPECT_EQ(stage(m, "start-daemon")["leftovers_killed"], 1);
  EXPECT_FALSE(alive(daemon)) << "daemon " << daemon << " survived its stage";
}

TEST_F(RunningOrder, GpusAreRecordedThroughNvml) {
  // The fake NVML library (two devices) stands in for libnvidia-ml: CI has no GPU.
  auto r = run({"--sample-interval", "100ms"},
               "name: gpu\nstages:\n  - name: a\n    run: [sleep, \"0.3\"]\n",
               {std::string("TROUPE_NVML_LIBRARY=") + TROUPE_FAKE_NVML});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = metadata();
  EXPECT_EQ(m["host"]["gpus"], 2);
  auto lines = trace();
  ASSERT_GE(lines.size(), 3u);
  for (const auto& l : lines) {
    ASSERT_EQ(l["gpus"].size(), 2u) << l.dump();
    EXPECT_EQ(l["gpus"][0]["name"], "Fake GPU A");
    EXPECT_EQ(l["gpus"][1]["mem_used_bytes"], 2LL << 30);
  }
  EXPECT_EQ(stage(m, "a")["resources"]["after"]["gpus"].size(), 2u);
}

// A `noop` stage completes at once without a process, and is recorded like
// any stage: metadata, store rows, events; no log files and no trace lines.
TEST_F(RunningOrder, ANoopStageIsRecordedWithoutAProcess) {
  auto r = run({}, "name: n\nstages:\n  - name: a\n    noop: true\n  - name: b\n    noop: true\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = metadata();
  ASSERT_EQ(m["stages"].size(), 2u);
  for (auto& s : m["stages"]) {
    EXPECT_EQ(s["status"], "succeeded");
    EXPECT_EQ(s["kind"], "noop");
    EXPECT_TRUE(s["pid"].is_null());
    EXPECT_TRUE(s["stdout_log"].is_null()) << "no log is named that does not exist";
  }
  auto dir = single_run_dir(out());
  EXPECT_FALSE(exists(dir + "/logs/a.stdout.log"));
  EXPECT_EQ(read_file(dir + "/resource_trace.jsonl"), "") << "no process: nothing sampled";
  auto shown = run_troupe({"show", "-o", out(), "--json", m["run_id"]}, tmp.path());
  auto run_doc = json::parse(shown.out);
  EXPECT_EQ(job_of(run_doc, "b")["attempts"][0]["status"], "succeeded");
  EXPECT_EQ(job_of(run_doc, "b")["attempts"][0]["strategy"], "noop");
}

// `artifacts: store`: no run folder at all; the store has the run, its jobs,
// attempts and events. Only noop stages may run so (nowhere for logs).
TEST_F(RunningOrder, ArtifactsInTheStoreWriteNoRunFolder) {
  auto r = run({}, "name: s\nartifacts: store\nstages:\n  - name: a\n    noop: true\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(single_run_dir(out()), "") << "no run folder";
  EXPECT_EQ(r.out.find("metadata.json"), std::string::npos) << r.out;
  auto listed = run_troupe({"runs", "-o", out(), "--json"}, tmp.path());
  auto runs = json::parse(listed.out)["runs"];
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0]["status"], "succeeded");
  EXPECT_EQ(runs[0]["run_dir"], "");
  auto events = run_troupe({"events", "-o", out(), runs[0]["run_id"]}, tmp.path());
  EXPECT_NE(events.out.find("attempt 1 succeeded"), std::string::npos) << events.out;
  auto bad = run({}, "name: s\nartifacts: store\nstages:\n  - name: a\n    shell: \"true\"\n");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("every stage must be noop"), std::string::npos) << bad.err;
}
