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
