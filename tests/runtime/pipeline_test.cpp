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
  EXPECT_EQ(crawl.env.at("LOG_LEVEL"), "info");
  EXPECT_EQ(crawl.argv(p->dir),
            (std::vector<std::string>{"python3", "stages/crawl.py", "--canary"}));
  EXPECT_EQ(crawl.line, 4);
  const auto& norm = p->stages[1];
  EXPECT_EQ(norm.timeout, caf::timespan{std::chrono::seconds(30)});
  EXPECT_EQ(norm.cwd, "/pipes/work") << "relative cwd resolves against the pipeline's folder";
  EXPECT_EQ(norm.env.at("BATCH"), "5");
  EXPECT_EQ(norm.env.at("LOG_LEVEL"), "info");
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
            "/nonexistent/troupe.yaml: cannot read pipeline file");
}
