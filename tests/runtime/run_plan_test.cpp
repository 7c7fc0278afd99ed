// make_run_plan: what a run is made of, without running anything.
#include "runtime/run_plan.hpp"

#include "messages/errors.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

std::string env_of(const job_spec& js, const std::string& name) {
  for (auto& kv : js.env)
    if (kv.rfind(name + "=", 0) == 0)
      return kv.substr(name.size() + 1);
  return "<unset>";
}

} // namespace

TEST(RunPlanTest, EnvironmentLayersPathsAndOptionalStages) {
  auto p = parse_pipeline(R"(name: plan
defaults: { env: { LEVEL: info, SHARED: defaults } }
stages:
  - name: a
    shell: "true"
    env: { SHARED: stage, TROUPE_STAGE: sneaky }
  - name: b
    run: [bin/tool]
    optional: true
  - name: c
    shell: "true"
    optional: true
)",
                          "/pipes/p.yaml");
  ASSERT_TRUE(p) << describe(p.error());
  run_start start;
  start.run_id = "run-1";
  start.run_dir = "/out/20261124_000000";
  start.started_at = caf::timestamp{std::chrono::seconds(1800000000)};
  start.pid = 42;
  start.owner = "h:42:7";
  start.enabled = {"b"};
  start.grace = 3s;
  start.sample_interval = 1s;
  start.environment = {{"PATH", "/bin"}, {"LEVEL", "from-troupe"}, {"HOME", "/root"}};
  auto plan = make_run_plan(*p, start);
  ASSERT_EQ(plan.jobs.size(), 3u);
  ASSERT_EQ(plan.record.stages.size(), 3u);
  EXPECT_EQ(plan.record.run_id, "run-1");
  EXPECT_EQ(plan.record.owner, "h:42:7");
  EXPECT_EQ(plan.record.status, run_status::queued);
  const auto& a = plan.jobs[0];
  EXPECT_EQ(env_of(a, "PATH"), "/bin") << "troupe's environment underneath";
  EXPECT_EQ(env_of(a, "LEVEL"), "info") << "defaults.env over troupe's";
  EXPECT_EQ(env_of(a, "SHARED"), "stage") << "the stage's env over defaults.env";
  EXPECT_EQ(env_of(a, "TROUPE_STAGE"), "a") << "troupe's own variables win";
  EXPECT_EQ(env_of(a, "TROUPE_RUN_ID"), "run-1");
  EXPECT_EQ(env_of(a, "TROUPE_RUN_DIR"), "/out/20261124_000000");
  EXPECT_EQ(env_of(a, "TROUPE_PIPELINE_DIR"), "/pipes");
  EXPECT_TRUE(std::is_sorted(a.env.begin(), a.env.end())) << "one entry per name, sorted";
  EXPECT_EQ(a.stdout_path, "/out/20261124_000000/logs/a.stdout.log");
  EXPECT_EQ(a.grace, caf::timespan{3s});
  EXPECT_EQ(plan.jobs[1].argv.at(0), "/pipes/bin/tool");
  EXPECT_TRUE(plan.record.stages[0].enabled);
  EXPECT_TRUE(plan.record.stages[1].enabled) << "optional, enabled";
  EXPECT_FALSE(plan.record.stages[2].enabled) << "optional, not enabled";
  EXPECT_EQ(plan.retry.size(), 3u);
  start.resumed = true;
  EXPECT_EQ(make_run_plan(*p, start).record.status, run_status::running);
}

TEST(RunPlanTest, TemplatesAndMatrixValuesAreFilledInAndNothingElse) {
  auto p = parse_pipeline(R"(name: t
params: { limit: { default: "5" } }
defaults: { env: { RUN_OF: "${run.id}" } }
stages:
  - name: fetch
    matrix: { shard: [a b, c] }
    run: [echo, "${params.limit}", "${matrix.shard}", "${stage.name}", "$HOME", "$${params.limit}"]
    env: { OUT: "${run.dir}/${matrix.shard}" }
    cwd: "${run.dir}"
)",
                          "/pipes/t.yaml");
  ASSERT_TRUE(p) << describe(p.error());
  run_start start;
  start.run_id = "r1";
  start.run_dir = "/out/r1";
  start.params = {{"limit", "10"}};
  auto plan = make_run_plan(*p, start);
  ASSERT_EQ(plan.jobs.size(), 2u);
  const auto& js = plan.jobs[0];
  EXPECT_EQ(js.name, "fetch[shard=a b]");
  EXPECT_EQ(js.argv, (std::vector<std::string>{"echo", "10", "a b", "fetch[shard=a b]", "$HOME",
                                               "${params.limit}"}));
  EXPECT_EQ(js.cwd, "/out/r1");
  EXPECT_EQ(env_of(js, "OUT"), "/out/r1/a b");
  EXPECT_EQ(env_of(js, "RUN_OF"), "r1");
  EXPECT_EQ(env_of(js, "TROUPE_MATRIX_SHARD"), "a b");
  EXPECT_EQ(js.stdout_path, "/out/r1/logs/fetch.shard-a_b.stdout.log");
  EXPECT_EQ(plan.record.stages[0].matrix.at("shard"), "a b");
  EXPECT_EQ(plan.record.params.at("limit"), "10");
}
