// Issue 13: records a new user found wrong, each checked against something
// independent of troupe (/usr/bin/time, the test's own clock, the fixture's
// figures), and the error messages users see, by text and exit code.
#include "../support/troupe_process.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

using namespace troupe::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string touch_memory = TROUPE_TOUCH_MEMORY;

struct TruthfulRecords : ::testing::Test {
  temp_dir tmp;
  std::string out() const { return tmp.path() + "/out"; }

  troupe_result run(const std::string& yaml, std::vector<std::string> extra = {},
                    const std::vector<std::string>& env = {}, const std::string& output = {}) {
    std::vector<std::string> args{"run", tmp.write("p.yaml", yaml), "--output",
                                  output.empty() ? out() : output};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_troupe(args, tmp.path(), env);
  }

  json metadata() { return read_json(single_run_dir(out()) + "/metadata.json"); }

  static const json& stage(const json& m, const std::string& name) {
    for (const auto& s : m["stages"])
      if (s["name"] == name)
        return s;
    throw std::runtime_error("no stage " + name);
  }
};

// Peak RSS in bytes as /usr/bin/time -v reports it for `argv`.
int64_t time_v_peak(const std::string& cmd) {
  auto pipe = ::popen(("/usr/bin/time -f '%M' " + cmd + " 2>&1 >/dev/null").c_str(), "r");
  if (pipe == nullptr)
    return -1;
  char buf[128] = {0};
  std::string last;
  while (std::fgets(buf, sizeof buf, pipe) != nullptr)
    last = buf;
  ::pclose(pipe);
  return std::stoll(last) * 1024;
}

} // namespace

TEST_F(TruthfulRecords, PeakMemoryIsTheStagesOwnNotTroupes) {
  auto r = run("name: mem\nstages:\n"
               "  - name: nothing\n    run: [true]\n"
               "  - name: mib64\n    run: [" + touch_memory + ", \"64\"]\n",
               {"--no-db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = metadata();
  int64_t nothing = stage(m, "nothing")["resources"]["peak_rss_bytes"];
  int64_t mib64 = stage(m, "mib64")["resources"]["peak_rss_bytes"];
  EXPECT_GT(nothing, 0);
  EXPECT_LT(nothing, 5LL << 20) << "`true` recorded with troupe's own memory";
  EXPECT_GT(mib64, (64LL << 20) * 9 / 10);
  EXPECT_LT(mib64, (64LL << 20) * 11 / 10);
  if (exists("/usr/bin/time")) {
    auto independent = time_v_peak(touch_memory + " 64");
    EXPECT_NEAR(static_cast<double>(mib64), static_cast<double>(independent),
                0.1 * static_cast<double>(independent))
      << "troupe and /usr/bin/time disagree";
  }
  EXPECT_EQ(stage(m, "mib64")["attempts"][0]["peak_rss_bytes"], mib64);
}

TEST_F(TruthfulRecords, AFailureUnderAMemoryLimitIsOomOnlyByTheStagesOwnFigures) {
  auto r = run("name: mem\nstages:\n"
               "  - name: exit3\n    shell: \"exit 3\"\n    optional: true\n"
               "    limits: { memory: 20Mi }\n"
               "  - name: refused\n    run: [" + touch_memory + ", \"+500\"]\n"
               "    limits: { memory: 100Mi }\n",
               {"--no-db", "--enable", "exit3"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto m = metadata();
  EXPECT_EQ(stage(m, "exit3")["failure_code"], "exit_nonzero") << stage(m, "exit3").dump();
  // (fail-fast: `refused` is skipped; run it alone)
  r = run("name: mem\nstages:\n"
          "  - name: refused\n    run: [" + touch_memory + ", \"+500\"]\n"
          "    limits: { memory: 100Mi }\n",
          {"--no-db"}, {}, tmp.path() + "/out2");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto m2 = read_json(single_run_dir(tmp.path() + "/out2") + "/metadata.json");
  const auto& s = stage(m2, "refused");
  EXPECT_EQ(s["failure_code"], "oom") << s.dump();
  EXPECT_NE(s["error"].get<std::string>().find("refused allocation"), std::string::npos) << s.dump();
}

// Item 4: a retried stage's progress line showed the time since its first
// start, backoff included; item 7: show gained ELAPSED, CPU, MAXRSS and
// EXIT, aligned whatever the content, and times with their zone.
TEST_F(TruthfulRecords, AttemptsReportTheirOwnDurationAndTheStageItsTotal) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = run("name: flaky\nstages:\n"
               "  - name: flaky\n"
               "    shell: 'test -f \"$TROUPE_RUN_DIR/once\" || { touch \"$TROUPE_RUN_DIR/once\"; "
               "exit 1; }'\n"
               "    retry: { max_attempts: 3, backoff: { initial: 1s }, on: [exit_nonzero] }\n");
  auto wall = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // "[1/1] flaky  retrying  3ms  attempt 1/3: exited with code 1 next in 1.00s"
  auto retry_line = r.out.substr(r.out.find("retrying"));
  retry_line = retry_line.substr(0, retry_line.find('\n'));
  auto own = retry_line.substr(9, retry_line.find(' ', 10) - 9);
  own = own.substr(own.find_first_not_of(' '));
  EXPECT_NE(own.find("ms"), std::string::npos) << "attempt 1 took milliseconds: " << retry_line;
  EXPECT_NE(retry_line.find("attempt 1/3"), std::string::npos) << retry_line;
  EXPECT_NE(retry_line.find("next in 1.00s"), std::string::npos) << retry_line;
  auto done = r.out.substr(r.out.find("succeeded"));
  done = done.substr(0, done.find('\n'));
  EXPECT_NE(done.find("attempt 2/3, stage 1."), std::string::npos) << done;
  EXPECT_GE(wall, 1s) << "the test's clock: the backoff was waited";

  auto m = metadata();
  const auto& s = stage(m, "flaky");
  ASSERT_EQ(s["attempts"].size(), 2u);
  double total = s["duration_s"].get<double>();
  double first = s["attempts"][0]["duration_s"].get<double>();
  double second = s["attempts"][1]["duration_s"].get<double>();
  EXPECT_LT(first, 0.5);
  EXPECT_LT(second, 0.5);
  EXPECT_GE(total, 1.0) << "the stage's total includes the 1 s wait";
  EXPECT_LE(total, std::chrono::duration<double>(wall).count());

  auto shown = run_troupe({"show", "-o", out(), single_run_dir(out())}, tmp.path());
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("started   20"), std::string::npos);
  EXPECT_NE(shown.out.find("Z\n"), std::string::npos) << "times carry their zone";
  // The table: every row's cells start where the header's columns do.
  auto table = shown.out.substr(shown.out.find("#  STAGE"));
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < table.size();) {
    auto nl = table.find('\n', pos);
    lines.push_back(table.substr(pos, nl - pos));
    pos = nl + 1;
  }
  ASSERT_EQ(lines.size(), 4u) << table;  // header, stage, try 1, try 2
  for (auto col : {"STATUS", "STRATEGY", "ELAPSED", "CPU", "MAXRSS", "EXIT", "HTTP", "CODE"}) {
    auto at = lines[0].find(col);
    ASSERT_NE(at, std::string::npos) << col;
    for (size_t i = 1; i < lines.size(); ++i) {
      ASSERT_GT(lines[i].size(), at) << lines[i];
      EXPECT_EQ(lines[i][at - 1], ' ') << col << " misaligned in: " << lines[i];
      EXPECT_NE(lines[i][at], ' ') << col << " misaligned in: " << lines[i];
    }
  }
  EXPECT_NE(lines[2].find("exit_nonzero"), std::string::npos) << lines[2];
}
