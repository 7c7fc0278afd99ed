// Every rejection of a pipeline file, with the message that names file,
// line, column and key; and what a valid file resolves to.
#include "runtime/pipeline.hpp"

#include "messages/errors.hpp"

#include <gtest/gtest.h>

using namespace troupe;

namespace {

std::string problems(const std::string& yaml) {
  auto p = parse_pipeline(yaml, "/pipes/p.yaml");
  if (p)
    return "";
  return describe(p.error());
}

#define EXPECT_REJECTED(yaml, fragment)                                        \
  do {                                                                         \
    auto text_ = problems(yaml);                                               \
    EXPECT_NE(text_.find(fragment), std::string::npos)                         \
      << "expected '" << (fragment) << "' in:\n" << text_;                     \
  } while (false)

} // namespace

TEST(PipelineTest, AcceptsTheIssueExample) {
  auto p = parse_pipeline(R"(name: canary
defaults: { timeout: 10m, env: { LOG_LEVEL: info } }
stages:
  - name: crawl
    run: [python3, stages/crawl.py, --canary]     # argv, no shell
  - name: normalize
    shell: "./stages/normalize.sh && echo ok"      # run through /bin/sh -c
    timeout: 30s
    cwd: work
    env: { BATCH: "5" }
  - name: training
    optional: true                                 # runs only with --enable training
    shell: "./stages/train.sh"
)",
                          "/pipes/canary.yaml");
  ASSERT_TRUE(p) << caf::to_string(p.error());
  EXPECT_EQ(p->name, "canary");
  EXPECT_EQ(p->dir, "/pipes");
  ASSERT_EQ(p->stages.size(), 3u);
  const auto& crawl = p->stages[0];
  EXPECT_EQ(crawl.timeout, caf::timespan{std::chrono::minutes(10)});
  EXPECT_EQ(crawl.cwd, "/pipes") << "default cwd: the pipeline's folder";
  EXPECT_EQ(p->environment(crawl).at("LOG_LEVEL"), "info");
  EXPECT_EQ(crawl.argv(p->dir),
            (std::vector<std::string>{"python3", "stages/crawl.py", "--canary"}));
  EXPECT_EQ(crawl.line, 4);
  const auto& norm = p->stages[1];
  EXPECT_EQ(norm.timeout, caf::timespan{std::chrono::seconds(30)});
  EXPECT_EQ(norm.cwd, "/pipes/work") << "relative cwd resolves against the pipeline's folder";
  EXPECT_EQ(p->environment(norm).at("BATCH"), "5");
  EXPECT_EQ(p->environment(norm).at("LOG_LEVEL"), "info");
  EXPECT_EQ(norm.argv(p->dir),
            (std::vector<std::string>{"/bin/sh", "-c", "./stages/normalize.sh && echo ok"}));
  EXPECT_TRUE(p->stages[2].optional);
  EXPECT_FALSE(norm.optional);
}

TEST(PipelineTest, RelativeProgramPathsResolveAgainstThePipelineFolder) {
  auto p = parse_pipeline("name: x\nstages:\n  - name: a\n    run: [bin/tool, x/y]\n"
                          "  - name: b\n    run: [/usr/bin/env]\n  - name: c\n    run: [env]\n",
                          "/pipes/p.yaml");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->stages[0].argv(p->dir), (std::vector<std::string>{"/pipes/bin/tool", "x/y"}));
  EXPECT_EQ(p->stages[1].argv(p->dir)[0], "/usr/bin/env");
  EXPECT_EQ(p->stages[2].argv(p->dir)[0], "env") << "bare names are looked up in PATH";
  EXPECT_EQ(p->stages[0].timeout, builtin_timeout);
}

TEST(PipelineTest, RejectsUnknownKeysWithLineAndKey) {
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    tmeout: 5s\n",
                  "/pipes/p.yaml:5:5: stages[0] (a).tmeout: unknown key (allowed: ");
  EXPECT_REJECTED("name: x\nversoin: 2\nstages:\n  - name: a\n    run: [true]\n",
                  "/pipes/p.yaml:2:1: versoin: unknown key");
  EXPECT_REJECTED("name: x\ndefaults: { retries: 3 }\nstages:\n  - name: a\n    run: [true]\n",
                  "/pipes/p.yaml:2:13: defaults.retries: unknown key");
}

TEST(PipelineTest, RejectsAStageWithNeitherOrBothCommands) {
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    timeout: 5s\n",
                  "/pipes/p.yaml:3:5: stages[0] (a): has none of run, shell, http");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    shell: \"true\"\n",
                  "/pipes/p.yaml:3:5: stages[0] (a): has more than one of run, shell, http");
}

TEST(PipelineTest, RejectsDuplicateStageNames) {
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n  - name: a\n    run: [true]\n",
                  "/pipes/p.yaml:5:11: stages[1] (a).name: duplicate stage name (first at line 3)");
}

TEST(PipelineTest, RejectsBadDurations) {
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    timeout: 10x\n",
                  "/pipes/p.yaml:5:14: stages[0] (a).timeout: '10x' is not a duration");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    timeout: -3s\n",
                  "stages[0] (a).timeout: '-3s' is not a duration");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    timeout: 0s\n",
                  "stages[0] (a).timeout: must be greater than zero");
  EXPECT_REJECTED("name: x\ndefaults: { timeout: soon }\nstages:\n  - name: a\n    run: [true]\n",
                  "/pipes/p.yaml:2:22: defaults.timeout: 'soon' is not a duration");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    timeout: [1, 2]\n",
                  "stages[0] (a).timeout: must be a single value");
}

TEST(PipelineTest, RejectsMalformedStructure) {
  EXPECT_REJECTED("stages:\n  - name: a\n    run: [true]\n", "name: missing");
  EXPECT_REJECTED("name: x\n", "stages: missing");
  EXPECT_REJECTED("name: x\nstages: []\n", "/pipes/p.yaml:2:9: stages: must be a non-empty list");
  EXPECT_REJECTED("name: x\nstages:\n  - just-a-string\n", "stages[0]: must be a mapping");
  EXPECT_REJECTED("name: x\nstages:\n  - run: [true]\n", "stages[0].name: missing");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: true\n",
                  "stages[0] (a).run: must be a non-empty list");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: []\n",
                  "stages[0] (a).run: must be a non-empty list");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    shell: \"  \"\n",
                  "stages[0] (a).shell: must not be empty");
  EXPECT_REJECTED("name: x\nstages:\n  - name: ../etc\n    run: [true]\n",
                  "stages[0] (../etc).name: '../etc' must be 1-64 of");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    optional: maybe\n",
                  "stages[0] (a).optional: 'maybe' is not true or false");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    env: { 1BAD: x }\n",
                  "stages[0] (a).env: '1BAD' is not a valid variable name");
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true]\n    env: [A]\n",
                  "stages[0] (a).env: must be a mapping");
  EXPECT_REJECTED("name: x\nname: y\nstages:\n  - name: a\n    run: [true]\n",
                  "/pipes/p.yaml:2:1: name: duplicate key");
  EXPECT_REJECTED("- a\n- b\n", "/pipes/p.yaml: must be a mapping with name and stages");
}

TEST(PipelineTest, ReportsYamlSyntaxErrorsWithPosition) {
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    run: [true\n",
                  "/pipes/p.yaml:5:1: YAML syntax error");
}

TEST(PipelineTest, ReportsEveryProblemAtOnce) {
  auto text = problems("name: x\nstages:\n  - name: a\n    run: [true]\n    tmeout: 1s\n"
                       "  - name: b\n    timeout: 0s\n    run: [true]\n");
  EXPECT_NE(text.find("tmeout"), std::string::npos) << text;
  EXPECT_NE(text.find("greater than zero"), std::string::npos) << text;
}

TEST(PipelineTest, LoadNamesAMissingFile) {
  auto p = load_pipeline("/nonexistent/troupe.yaml");
  ASSERT_FALSE(p);
  EXPECT_EQ(describe(p.error()),
            "/nonexistent/troupe.yaml: no such pipeline file");
}

TEST(PipelineTest, ParsesRetryHttpLimitsSupervisionAndResume) {
  auto p = parse_pipeline(R"(name: web
resume: true
supervision: { max_retries: 4, within: 2m }
defaults:
  retry: { max_attempts: 2, backoff: { initial: 1s, factor: 2, max: 10s } }
stages:
  - name: fetch-home
    http: { url: "http://127.0.0.1:8080/", method: GET, headers: {Accept: text/html}, timeout: 20s }
    strategy: auto
    expect: { status: [200, 204] }
    retry:
      max_attempts: 3
      backoff: { initial: 10s, factor: 3, max: 5m, jitter: 0.1 }
      on: [timeout, network, rate_limited, exit_nonzero]
  - name: train
    shell: "true"
    limits: { memory: 512M }
)",
                          "/pipes/web.yaml");
  ASSERT_TRUE(p) << describe(p.error());
  EXPECT_TRUE(p->resume);
  EXPECT_EQ(p->supervision.max_retries, 4);
  EXPECT_EQ(p->supervision.within, caf::timespan{std::chrono::minutes(2)});
  const auto& f = p->stages[0];
  EXPECT_TRUE(f.is_http);
  EXPECT_EQ(f.strategy, "auto");
  EXPECT_EQ(f.http.url, "http://127.0.0.1:8080/");
  EXPECT_EQ(f.http.headers.at("Accept"), "text/html");
  EXPECT_EQ(f.http.expect_status, (std::vector<int32_t>{200, 204}));
  EXPECT_EQ(f.timeout, caf::timespan{std::chrono::seconds(20)}) << "http.timeout bounds the attempt";
  EXPECT_EQ(f.retry.max_attempts, 3);
  EXPECT_EQ(f.retry.backoff.initial, caf::timespan{std::chrono::seconds(10)});
  EXPECT_DOUBLE_EQ(f.retry.backoff.factor, 3.0);
  EXPECT_DOUBLE_EQ(f.retry.backoff.jitter, 0.1);
  EXPECT_EQ(f.retry.on.size(), 4u);
  EXPECT_EQ(f.command(), "GET http://127.0.0.1:8080/");
  const auto& t = p->stages[1];
  EXPECT_EQ(t.retry.max_attempts, 2) << "defaults.retry applies";
  EXPECT_EQ(t.retry.backoff.max, caf::timespan{std::chrono::seconds(10)});
  EXPECT_EQ(t.memory_limit, 512LL << 20);
  EXPECT_EQ(t.strategy, "exec");
}

TEST(PipelineTest, RejectsMalformedRetryHttpAndLimits) {
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    shell: "true"
    retry: { max_attempts: 0 }
)",
                  "stages[0] (a).retry.max_attempts: must be between 1 and 100, not 0");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    shell: "true"
    retry: { backoff: { initial: 0s } }
)",
                  "stages[0] (a).retry.backoff.initial: must be greater than zero");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    shell: "true"
    retry: { backoff: { initial: -5s } }
)",
                  "stages[0] (a).retry.backoff.initial: '-5s' is not a duration");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    shell: "true"
    retry: { on: [timeout, teapot] }
)",
                  "stages[0] (a).retry.on[1]: 'teapot' is not a failure code that can be retried");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    shell: "true"
    retry: { backoff: { jitter: 2 } }
)",
                  "retry.backoff.jitter: must be between 0 and 1, not 2");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    shell: "true"
    retry: { tries: 3 }
)",
                  "stages[0] (a).retry.tries: unknown key");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    http: { url: "ftp://example.org/x" }
)",
                  "stages[0] (a).http.url: 'ftp://example.org/x' is not an http:// or https:// URL");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    http: { url: "http://h/", method: FETCH }
)",
                  "stages[0] (a).http.method: 'FETCH' is not one of");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    http: { url: "http://h/" }
    strategy: crawler
)",
                  "stages[0] (a).strategy: 'crawler' is not one of auto, http, browser");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    shell: "true"
    strategy: http
)",
                  "stages[0] (a).strategy: only http stages have a strategy");
  EXPECT_REJECTED(R"(name: p
stages:
  - name: a
    shell: "true"
    limits: { memory: lots }
)",
                  "stages[0] (a).limits.memory: 'lots' is not a size with a unit");
  EXPECT_REJECTED(R"(name: p
supervision: { within: 0s }
stages:
  - name: a
    shell: "true"
)",
                  "supervision.within: must be greater than zero");
}

// Issue 13, item 9 and 11: hostile files end in a message, never a crash.
namespace {
std::string stage_with(const std::string& extra) {
  return "name: x\nstages:\n  - name: a\n    run: [true]\n" + extra;
}
} // namespace

TEST(PipelineTest, NumbersThatAreNotPlainDecimalsAreRejected) {
  EXPECT_REJECTED(stage_with("    retry: { backoff: { factor: nan } }\n"),
                  "stages[0] (a).retry.backoff.factor: 'nan' is not a number");
  EXPECT_REJECTED(stage_with("    retry: { backoff: { jitter: nan } }\n"),
                  "retry.backoff.jitter: 'nan' is not a number");
  EXPECT_REJECTED(stage_with("    retry: { backoff: { factor: 1e999 } }\n"),
                  "retry.backoff.factor: '1e999' is not a number");
  EXPECT_REJECTED(stage_with("    retry: { backoff: { factor: inf } }\n"),
                  "retry.backoff.factor: 'inf' is not a number");
  EXPECT_REJECTED(stage_with("    timeout: 1e999\n"), "timeout: '1e999' is not a duration");
  EXPECT_REJECTED(stage_with("    timeout: " + std::string(400, '9') + "\n"),
                  "timeout: '999999999999999999999999999999999999999999999999999999999999...(400"
                  " bytes)' is not a duration");
  EXPECT_REJECTED(stage_with("    retry: { max_attempts: 99999999999999999999 }\n"),
                  "max_attempts: '99999999999999999999' is not a whole number");
}

TEST(PipelineTest, LongValuesDeepNestingAndManyStagesAreRejectedByName) {
  EXPECT_REJECTED(stage_with("    description: x\n    cwd: " + std::string(70000, 'a') + "\n"),
                  "stages[0] (a).cwd: value is 70000 bytes long; at most 65536 are accepted");
  // std::regex used to recurse per character here and exhaust the stack.
  EXPECT_REJECTED("name: x\nstages:\n  - name: a\n    http: { url: \"http://"
                    + std::string(60000, 'a') + " \" }\n",
                  "is not an http:// or https:// URL");
  EXPECT_REJECTED("name: x\nstages: " + std::string(5000, '[') + std::string(5000, ']') + "\n",
                  "/pipes/p.yaml:2: nested more than 32 levels deep (lists and mappings)");
  std::string dashes;
  for (int i = 0; i < 3000; ++i)
    dashes += "- ";
  EXPECT_REJECTED(dashes + "x\n", "/pipes/p.yaml:1: nested more than 32 levels deep");
  std::string many = "name: x\nstages:\n";
  for (int i = 0; i < 1001; ++i)
    many += "  - { name: s" + std::to_string(i) + ", run: [true] }\n";
  EXPECT_REJECTED(many, "stages: 1001 stages; at most 1000 are accepted");
  EXPECT_REJECTED(std::string((1 << 20) + 1, '#'),
                  "the file is 1048577 bytes; pipeline files may have at most 1048576");
}

TEST(PipelineTest, AShellScriptsOwnIndentationIsNotNesting) {
  std::string script = "    shell: |\n";
  for (int i = 0; i < 40; ++i)
    script += "      " + std::string(2 * static_cast<size_t>(i), ' ') + "echo " + std::to_string(i)
              + "\n";
  auto p = parse_pipeline("name: x\nstages:\n  - name: a\n" + script, "/pipes/p.yaml");
  ASSERT_TRUE(p) << describe(p.error());
}

TEST(PipelineTest, AliasesExpandedBeyondTheBudgetAreRejected) {
  std::string yaml = "name: x\nstages:\n  - name: a\n    run: [true]\n    env: &e {";
  for (int i = 0; i < 1000; ++i)
    yaml += (i ? ", " : "") + std::string("V") + std::to_string(i) + ": x";
  yaml += "}\n";
  for (int i = 1; i < 300; ++i)
    yaml += "  - { name: s" + std::to_string(i) + ", run: [true], env: *e }\n";
  EXPECT_REJECTED(yaml, "more than 200000 values in all (aliases expanded too many times?)");
}

TEST(PipelineTest, ControlCharactersInKeysAreEscapedInMessages) {
  auto text = problems("name: x\n\"\\e[31mred\\e[0m\": 1\nstages:\n  - name: a\n    run: [true]\n");
  EXPECT_NE(text.find("\\x1b[31mred\\x1b[0m: unknown key"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "a raw escape reached the message";
}

TEST(PipelineTest, MemoryLimitsNeedAUnitAndAtLeastOneMebibyte) {
  EXPECT_REJECTED(stage_with("    limits: { memory: 10 }\n"),
                  "limits.memory: '10' is not a size with a unit (e.g. 512Mi, 2Gi, 500MB)");
  EXPECT_REJECTED(stage_with("    limits: { memory: 512k }\n"),
                  "limits.memory: '512k' is below 1 MiB");
  auto mem = [](const std::string& v) {
    auto p = parse_pipeline(stage_with("    limits: { memory: " + v + " }\n"), "/pipes/p.yaml");
    return p ? p->stages[0].memory_limit : -1;
  };
  EXPECT_EQ(mem("512M"), 512LL << 20);
  EXPECT_EQ(mem("512Mi"), 512LL << 20);
  EXPECT_EQ(mem("512MiB"), 512LL << 20);
  EXPECT_EQ(mem("2Gi"), 2LL << 30);
  EXPECT_EQ(mem("500MB"), 500LL * 1000 * 1000);
  EXPECT_EQ(mem("2GB"), 2LL * 1000 * 1000 * 1000);
}

TEST(PipelineTest, DefaultEnvironmentIsKeptOnceNotCopiedIntoEveryStage) {
  std::string yaml = "name: x\ndefaults: { env: {";
  for (int i = 0; i < 500; ++i)
    yaml += (i ? ", " : "") + std::string("V") + std::to_string(i) + ": x";
  yaml += "} }\nstages:\n";
  for (int i = 0; i < 1000; ++i)
    yaml += "  - { name: s" + std::to_string(i) + ", run: [true] }\n";
  auto p = parse_pipeline(yaml, "/pipes/p.yaml");
  ASSERT_TRUE(p) << describe(p.error());
  EXPECT_EQ(p->default_env.size(), 500u);
  for (auto& s : p->stages)
    ASSERT_TRUE(s.env.empty()) << s.name << " holds a copy of defaults.env";
  EXPECT_EQ(p->environment(p->stages[999]).size(), 500u);
}

// -- graphs (issue 16): depends_on, max_parallel, on_failure ------------------

TEST(PipelineTest, WithoutDependsOnAStageWaitsForTheOneBefore) {
  auto p = parse_pipeline("name: g\nstages:\n  - name: a\n    run: [\"true\"]\n"
                          "  - name: b\n    run: [\"true\"]\n"
                          "  - name: c\n    depends_on: []\n    run: [\"true\"]\n",
                          "/pipes/g.yaml");
  ASSERT_TRUE(p) << caf::to_string(p.error());
  EXPECT_TRUE(p->stages[0].depends_on.empty());
  EXPECT_EQ(p->stages[1].depends_on, std::vector<std::string>{"a"});
  EXPECT_TRUE(p->stages[2].depends_on.empty()) << "depends_on: [] makes a root";
  EXPECT_EQ(p->max_parallel, 0) << "0: the number of cores, decided at run time";
  EXPECT_FALSE(p->continue_on_failure);
  auto waves = stage_waves(*p);
  ASSERT_EQ(waves.size(), 2u);
  EXPECT_EQ(waves[0], (std::vector<size_t>{0, 2}));
  EXPECT_EQ(waves[1], (std::vector<size_t>{1}));
}

TEST(PipelineTest, ADiamondHasThreeWaves) {
  auto p = parse_pipeline(R"(name: diamond
max_parallel: 3
on_failure: continue
stages:
  - name: a
    run: ["true"]
  - name: b
    depends_on: [a]
    run: ["true"]
  - name: c
    depends_on: [a]
    run: ["true"]
  - name: d
    depends_on: [b, c]
    run: ["true"]
)",
                          "/pipes/d.yaml");
  ASSERT_TRUE(p) << caf::to_string(p.error());
  EXPECT_EQ(p->max_parallel, 3);
  EXPECT_TRUE(p->continue_on_failure);
  auto waves = stage_waves(*p);
  ASSERT_EQ(waves.size(), 3u);
  EXPECT_EQ(waves[1], (std::vector<size_t>{1, 2}));
  EXPECT_EQ(waves[2], (std::vector<size_t>{3}));
}

TEST(PipelineTest, GraphMistakesAreNamedWithFileLineAndStage) {
  auto stage = [](const std::string& name, const std::string& deps) {
    return "  - name: " + name + "\n    depends_on: " + deps + "\n    run: [\"true\"]\n";
  };
  // A cycle, named stage by stage, at the depends_on that closes it.
  EXPECT_REJECTED("name: c\nstages:\n" + stage("a", "[c]") + stage("b", "[a]") + stage("c", "[b]"),
                  "/pipes/p.yaml:7:17: stages[1] (b).depends_on: cycle: a -> c -> b -> a "
                  "(each stage waits for the one after it)");
  // Itself.
  EXPECT_REJECTED("name: s\nstages:\n" + stage("a", "[a]"),
                  "/pipes/p.yaml:4:18: stages[0] (a).depends_on[0]: a stage cannot depend on itself");
  // An unknown name, with the stages there are.
  EXPECT_REJECTED("name: u\nstages:\n" + stage("a", "[]") + stage("b", "[a, nope]"),
                  "/pipes/p.yaml:7:21: stages[1] (b).depends_on[1]: no stage named 'nope' "
                  "(stages: a)");
  EXPECT_REJECTED("name: t\nstages:\n" + stage("a", "[]") + stage("b", "[a, a]"),
                  "stages[1] (b).depends_on[1]: 'a' is named twice");
  EXPECT_REJECTED("name: m\nstages:\n" + stage("a", "a"),
                  "stages[0] (a).depends_on: must be a list of stage names ([] for none)");
  EXPECT_REJECTED("name: p\nmax_parallel: 0\nstages:\n" + stage("a", "[]"),
                  "/pipes/p.yaml:2:15: max_parallel: must be between 1 and 10000");
  EXPECT_REJECTED("name: f\non_failure: ignore\nstages:\n" + stage("a", "[]"),
                  "/pipes/p.yaml:2:13: on_failure: 'ignore' is not stop or continue");
}

// -- matrix, params, templates (issue 16) ------------------------------------

TEST(PipelineTest, AMatrixStageBecomesOneStagePerCombination) {
  auto p = parse_pipeline(R"(name: m
stages:
  - name: train
    matrix: { shard: [1, 2], model: [small, large] }
    run: [echo, "${matrix.shard}", "${matrix.model}"]
  - name: merge
    shell: "true"
  - name: report
    depends_on: [train]
    shell: "true"
)",
                          "/pipes/m.yaml");
  ASSERT_TRUE(p) << caf::to_string(p.error());
  ASSERT_EQ(p->stages.size(), 6u);
  std::vector<std::string> names;
  for (size_t i = 0; i < 4; ++i)
    names.push_back(p->stages[i].name);
  EXPECT_EQ(names, (std::vector<std::string>{
                     "train[shard=1,model=small]", "train[shard=1,model=large]",
                     "train[shard=2,model=small]", "train[shard=2,model=large]"}));
  EXPECT_EQ(p->stages[1].base_name, "train");
  EXPECT_EQ(p->stages[1].matrix,
            (std::vector<std::pair<std::string, std::string>>{{"shard", "1"}, {"model", "large"}}));
  EXPECT_EQ(p->stages[4].depends_on, names) << "the stage after a matrix waits for all of it";
  EXPECT_EQ(p->stages[5].depends_on, names) << "depends_on: [train] names every instance";
  EXPECT_EQ(log_stem(names[1]), "train.shard-1.model-large");
}

TEST(PipelineTest, MatrixAndTemplateMistakesAreNamed) {
  EXPECT_REJECTED("name: big\nstages:\n  - name: t\n    matrix: { a: [" + [] {
    std::string v;
    for (int i = 0; i < 17; ++i)
      v += (i ? "," : "") + std::to_string(i);
    return v;
  }() + "], b: [" + [] {
    std::string v;
    for (int i = 0; i < 16; ++i)
      v += (i ? "," : "") + std::to_string(i);
    return v;
  }() + "] }\n    shell: \"true\"\n",
                  "stages[0] (t).matrix: more than 256 combinations; at most that many "
                  "instances of one stage");
  EXPECT_REJECTED("name: e\nstages:\n  - name: t\n    matrix: { a: [] }\n    shell: \"true\"\n",
                  "stages[0] (t).matrix.a: must be a non-empty list of values");
  EXPECT_REJECTED("name: r\nstages:\n  - name: t\n    run: [echo, \"${params.nope}\"]\n",
                  "/pipes/p.yaml:4:17: stages[0] (t).run[1]: '${params.nope}': no parameter "
                  "named 'nope' (params: none declared)");
  EXPECT_REJECTED("name: r\nstages:\n  - name: t\n    shell: \"echo ${matrix.shard}\"\n",
                  "stages[0] (t).shell: '${matrix.shard}': this stage has no matrix");
  EXPECT_REJECTED("name: r\nstages:\n  - name: t\n    shell: \"echo ${run.nope}\"\n",
                  "'${run.nope}': unknown; run.id and run.dir exist");
  EXPECT_REJECTED("name: r\nstages:\n  - name: t\n    shell: \"echo ${foo.bar}\"\n",
                  "unknown reference '${foo.bar}' (known: params.NAME, matrix.NAME, run.id, "
                  "run.dir, stage.name, env.NAME; write $${ for a literal ${)");
  EXPECT_REJECTED("name: r\nstages:\n  - name: t\n    shell: \"echo ${params.x\"\n",
                  "'${params.x' has no closing '}'");
  EXPECT_REJECTED("name: r\nparams: { x: { required: true, default: 1 } }\nstages:\n"
                  "  - name: t\n    shell: \"true\"\n",
                  "params.x: has both required: true and a default; give one");
  // A shell's own ${HOME} and $HOME are the shell's business.
  EXPECT_EQ(problems("name: r\nstages:\n  - name: t\n    shell: \"echo ${HOME} $HOME $(pwd)\"\n"),
            "");
}

TEST(PipelineTest, ParamsResolveFromGivenValuesAndDefaults) {
  auto p = parse_pipeline(R"(name: p
params:
  date: { default: today }
  limit: { required: true, description: rows to read }
stages:
  - name: a
    run: [echo, "${params.date}", "${params.limit}", "${env.TEST_HOME_DIR}"]
)",
                          "/pipes/p.yaml");
  ASSERT_TRUE(p) << caf::to_string(p.error());
  std::map<std::string, std::string> env{{"TEST_HOME_DIR", "/home/x"}};
  auto ok = resolve_params(*p, {{"limit", "10"}}, env);
  ASSERT_TRUE(ok) << describe(ok.error());
  EXPECT_EQ(*ok, (std::map<std::string, std::string>{{"date", "today"}, {"limit", "10"}}));
  auto missing = resolve_params(*p, {{"lmit", "10"}}, {});
  ASSERT_FALSE(missing);
  auto text = describe(missing.error());
  EXPECT_NE(text.find("--param lmit: /pipes/p.yaml declares no such parameter (params: date, "
                      "limit)"),
            std::string::npos)
    << text;
  EXPECT_NE(text.find("parameter 'limit' is required by /pipes/p.yaml (give --param "
                      "limit=VALUE): rows to read"),
            std::string::npos)
    << text;
  EXPECT_NE(text.find("${env.TEST_HOME_DIR} is used by /pipes/p.yaml but TEST_HOME_DIR "
                      "is not set in troupe's environment"),
            std::string::npos)
    << text;
  // The API's wording names the pipeline, never the server's file.
  auto api = resolve_params(*p, {{"lmit", "10"}}, {}, param_wording::api);
  ASSERT_FALSE(api);
  auto api_text = describe(api.error());
  EXPECT_NE(api_text.find("lmit: pipeline 'p' declares no such parameter"), std::string::npos)
    << api_text;
  EXPECT_NE(api_text.find("parameter 'limit' is required by pipeline 'p' (give params.limit)"),
            std::string::npos)
    << api_text;
  EXPECT_EQ(api_text.find("/pipes/"), std::string::npos) << api_text;
}

TEST(PipelineTest, ApiEnvListsPlainNamesOnlyAndSecretsNeverReachAStage) {
  auto p = parse_pipeline("name: p\napi_env: [BATCH, MODEL]\nstages:\n  - name: a\n"
                          "    shell: \"true\"\n",
                          "/pipes/p.yaml");
  ASSERT_TRUE(p) << describe(p.error());
  EXPECT_EQ(p->api_env, (std::set<std::string>{"BATCH", "MODEL"}));
  const std::string tail = "stages:\n  - name: a\n    shell: \"true\"\n";
  EXPECT_REJECTED("name: p\napi_env: BATCH\n" + tail, "api_env: must be a list of variable names");
  EXPECT_REJECTED("name: p\napi_env: [1X]\n" + tail, "api_env[0]: '1X' is not a valid variable name");
  EXPECT_REJECTED("name: p\napi_env: [TROUPE_TOKEN]\n" + tail, "api_env[0]: 'TROUPE_TOKEN': TROUPE_*");
  EXPECT_REJECTED("name: p\napi_env: [A, LD_PRELOAD]\n" + tail,
                  "api_env[1]: 'LD_PRELOAD' changes what code a stage loads");
  EXPECT_REJECTED("name: p\napi_env: [PATH]\n" + tail, "api_env[0]: 'PATH' changes");
  EXPECT_REJECTED("name: p\napi_env: [BASH_ENV]\n" + tail, "api_env[0]: 'BASH_ENV' changes");
  EXPECT_REJECTED("name: p\napi_env: [A, A]\n" + tail, "api_env[1]: 'A' is listed twice");
  EXPECT_REJECTED("name: p\nstages:\n  - name: a\n    run: [echo, \"${env.TROUPE_TOKEN}\"]\n",
                  "'${env.TROUPE_TOKEN}': troupe's own variables");
  EXPECT_REJECTED("name: p\nstages:\n  - name: a\n    shell: \"echo ${env.PGPASSWORD}\"\n",
                  "'${env.PGPASSWORD}': troupe's own variables");
}

TEST(PipelineTest, ResourcesAreParsedAndCheckedByName) {
  auto p = parse_pipeline(stage_with("    resources: { cpus: 2, memory: 8Gi, gpu_memory: 8GiB }\n"
                                     "    gpu_fallback: cpu\n"),
                          "/pipes/p.yaml");
  ASSERT_TRUE(p) << describe(p.error());
  EXPECT_EQ(p->stages[0].resources.cpus, 2);
  EXPECT_EQ(p->stages[0].resources.memory_bytes, 8LL << 30);
  EXPECT_EQ(p->stages[0].resources.gpu_memory_bytes, 8LL << 30);
  EXPECT_EQ(p->stages[0].gpu_fallback, "cpu");
  auto plain = parse_pipeline(stage_with(""), "/pipes/p.yaml");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->stages[0].resources.cpus, 1) << "a stage takes one slot by default";
  EXPECT_EQ(plain->stages[0].gpu_fallback, "fail");
  EXPECT_REJECTED(stage_with("    resources: { cpus: 2000 }\n"), "resources.cpus");
  EXPECT_REJECTED(stage_with("    resources: { cpus: two }\n"), "resources.cpus");
  EXPECT_REJECTED(stage_with("    resources: { memory: 10 }\n"),
                  "resources.memory: '10' is not a size with a unit");
  EXPECT_REJECTED(stage_with("    resources: { gpus: 1, gpu_memory: 8Gi }\n"),
                  "resources.gpu_memory: give gpus (whole GPUs) or gpu_memory (a share of one "
                  "GPU), not both");
  EXPECT_REJECTED(stage_with("    resources: { tpus: 1 }\n"), "tpus");
  EXPECT_REJECTED(stage_with("    resources: 4\n"),
                  "resources: must be a mapping with cpus, memory, gpus or gpu_memory");
  EXPECT_REJECTED(stage_with("    gpu_fallback: cpu\n"),
                  "gpu_fallback: applies only to a stage with resources.gpus or "
                  "resources.gpu_memory");
  EXPECT_REJECTED(stage_with("    resources: { gpus: 1 }\n    gpu_fallback: maybe\n"),
                  "gpu_fallback: 'maybe' is not one of fail, cpu, wait");
}
