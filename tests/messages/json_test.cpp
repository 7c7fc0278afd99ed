#include "messages/json.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

using namespace troupe;

TEST(JsonTest, TimestampsAreUtcIsoWithMilliseconds) {
  caf::timestamp ts{std::chrono::milliseconds(1795425243127)};
  EXPECT_EQ(iso8601(ts), "2026-11-23T09:14:03.127Z");
  EXPECT_EQ(iso8601(caf::timestamp{}), "1970-01-01T00:00:00.000Z");
}

TEST(JsonTest, TraceLineIsOneLineWithTheContractKeys) {
  snapshot s;
  s.run_id = "r1";
  s.stage = "crawl";
  s.phase = "before";
  s.top.push_back(top_process{7, "name with \"quotes\"\n", 4096, 1.5});
  auto line = trace_line(s);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto j = nlohmann::json::parse(line);
  EXPECT_TRUE(j["process"].is_null());
  EXPECT_EQ(j["top"][0]["name"], "name with \"quotes\"\n");
  EXPECT_EQ(j["host"].size(), 4u);
  EXPECT_TRUE(j["gpus"].is_array());
}

TEST(JsonTest, MetadataHasStageRecordsAndTotals) {
  run_record r;
  r.run_id = "r1";
  r.started_at = caf::timestamp{std::chrono::seconds(10)};
  r.finished_at = caf::timestamp{std::chrono::seconds(13)};
  stage_record a;
  a.name = "a";
  a.status = stage_status::failed;
  a.failure = failure_code::exit_nonzero;
  a.exit_code = 3;
  a.started_at = r.started_at;
  a.resources.cpu_seconds = 1.25;
  a.resources.peak_rss_bytes = 2048;
  stage_record b;
  b.name = "b";
  b.status = stage_status::skipped;
  r.stages = {a, b};
  auto j = nlohmann::json::parse(metadata_document(r));
  EXPECT_EQ(j["stages"][0]["failure_code"], "exit_nonzero");
  EXPECT_EQ(j["stages"][0]["exit_code"], 3);
  EXPECT_TRUE(j["stages"][0]["signal"].is_null());
  EXPECT_TRUE(j["stages"][1]["duration_s"].is_null()) << "never started";
  EXPECT_TRUE(j["stages"][1]["failure_code"].is_null());
  EXPECT_DOUBLE_EQ(j["totals"]["cpu_seconds"].get<double>(), 1.25);
  EXPECT_EQ(j["totals"]["peak_rss_bytes"], 2048);
  EXPECT_DOUBLE_EQ(j["totals"]["wall_seconds"].get<double>(), 3.0);
  EXPECT_EQ(j["totals"]["stages_executed"], 1);
}

TEST(JsonTest, IncrementalRendererMatchesAFullRenderAfterEveryChange) {
  run_record r;
  r.run_id = "r1";
  for (auto name : {"a", "b", "c"}) {
    stage_record s;
    s.name = name;
    r.stages.push_back(s);
  }
  metadata_renderer renderer;
  EXPECT_EQ(renderer.render(r), metadata_document(r));
  r.stages[0].status = stage_status::running;
  r.stages[0].started_at = caf::timestamp{std::chrono::seconds(5)};
  ++r.stages[0].revision;
  EXPECT_EQ(renderer.render(r), metadata_document(r));
  snapshot snap;
  snap.top.push_back(top_process{1, "init", 4096, 0});
  snap.process = tree_figures{{10, 11}, 8192, 0.5};
  r.stages[1].resources.after = snap;
  r.stages[1].error = "line one\nline two";
  ++r.stages[1].revision;
  r.status = run_status::failed;
  EXPECT_EQ(renderer.render(r), metadata_document(r));
  // A change without a revision bump is not seen: the cache is what it says.
  r.stages[2].name = "renamed";
  EXPECT_NE(renderer.render(r), metadata_document(r));
  run_record empty;
  EXPECT_EQ(metadata_renderer{}.render(empty), metadata_document(empty));
}

TEST(JsonTest, InvalidUtf8FromTheHostDoesNotBreakWriting) {
  // Process names come from /proc and may be any bytes; a stage's command
  // or error text too. They must never make a trace line or metadata throw.
  snapshot s;
  s.top.push_back(top_process{7, std::string("bad\xff\xfe name"), 1, 0});
  std::string line;
  ASSERT_NO_THROW(line = trace_line(s));
  EXPECT_NO_THROW(nlohmann::json::parse(line));
  run_record r;
  stage_record st;
  st.name = "a";
  st.command = "printf '\xc3\x28'";
  r.stages.push_back(st);
  std::string doc;
  ASSERT_NO_THROW(doc = metadata_document(r));
  EXPECT_NO_THROW(nlohmann::json::parse(doc));
  metadata_renderer renderer;
  ASSERT_NO_THROW(doc = renderer.render(r));
  EXPECT_EQ(doc, metadata_document(r));
}
