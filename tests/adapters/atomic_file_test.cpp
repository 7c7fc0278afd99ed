#include "adapters/artifacts/atomic_file.hpp"
#include "adapters/artifacts/run_folder.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace troupe;

namespace {

struct ArtifactsTest : ::testing::Test {
  std::string dir;
  ArtifactsTest() {
    char tmpl[] = "/tmp/troupe-artifacts-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~ArtifactsTest() override {
    std::system(("rm -rf " + dir).c_str());
  }
  static std::string read(const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

} // namespace

TEST_F(ArtifactsTest, AtomicWriteReplacesWholeAndLeavesNoTemp) {
  auto p = dir + "/metadata.json";
  ASSERT_FALSE(write_atomically(p, "first\n"));
  ASSERT_FALSE(write_atomically(p, "second\n"));
  EXPECT_EQ(read(p), "second\n");
  EXPECT_NE(::access((p + ".tmp").c_str(), F_OK), 0);
  auto err = write_atomically(dir + "/no/such/dir/m.json", "x");
  ASSERT_TRUE(err);
  EXPECT_NE(caf::to_string(err).find("cannot create"), std::string::npos);
}

TEST_F(ArtifactsTest, AppenderAppendsWholeLines) {
  line_appender a;
  ASSERT_FALSE(a.open(dir + "/t.jsonl"));
  ASSERT_FALSE(a.append("{\"a\":1}"));
  ASSERT_FALSE(a.append("{\"a\":2}"));
  EXPECT_EQ(read(dir + "/t.jsonl"), "{\"a\":1}\n{\"a\":2}\n");
  line_appender closed;
  EXPECT_TRUE(closed.append("x"));
}

TEST_F(ArtifactsTest, RunFoldersAreNamedByUtcTimeWithSuffixes) {
  caf::timestamp t{std::chrono::seconds(1795425243)};  // 2026-11-23 09:14:03 UTC
  auto a = create_run_folder(dir + "/out/nested", t);
  auto b = create_run_folder(dir + "/out/nested", t);
  auto c = create_run_folder(dir + "/out/nested", t);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, dir + "/out/nested/20261123_091403");
  EXPECT_EQ(*b, *a + "_1");
  EXPECT_EQ(*c, *a + "_2");
  struct stat st{};
  EXPECT_EQ(::stat((*a + "/logs").c_str(), &st), 0);
  // Many in one second (a coordinator): each name once, in order, and a
  // name another process took meanwhile is passed over.
  ASSERT_EQ(::mkdir((*a + "_3").c_str(), 0755), 0);
  std::vector<std::string> more;
  for (int i = 0; i < 200; ++i) {
    auto d = create_run_folder(dir + "/out/nested", t);
    ASSERT_TRUE(d);
    more.push_back(*d);
  }
  EXPECT_EQ(more.front(), *a + "_4");
  EXPECT_EQ(more.back(), *a + "_203");
  std::ofstream(dir + "/file") << "x";
  auto bad = create_run_folder(dir + "/file/out", t);
  ASSERT_FALSE(bad);
  EXPECT_NE(caf::to_string(bad.error()).find(dir + "/file"), std::string::npos);
}
