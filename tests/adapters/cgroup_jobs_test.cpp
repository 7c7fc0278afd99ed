// cgroup_jobs' reading of memory.events, on real files in the layout of a
// cgroup folder (this machine's hierarchy delegates no memory controller).
#include "adapters/process/cgroup_jobs.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <unistd.h>

using namespace troupe;

TEST(CgroupJobs, MemoryEventsAreParsedByKey) {
  auto ev = cgroup_jobs::parse_memory_events("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\n"
                                             "oom_group_kill 0\n");
  EXPECT_EQ(ev.max, 12);
  EXPECT_EQ(ev.oom, 3);
  EXPECT_EQ(ev.oom_kill, 2);
  auto none = cgroup_jobs::parse_memory_events("");
  EXPECT_EQ(none.oom_kill, 0);
}

TEST(CgroupJobs, MemoryEventsOfACgroupWithoutTheControllerAreUnknown) {
  char tmpl[] = "/tmp/troupe-cgroup-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  EXPECT_FALSE(cgroup_jobs::read_memory_events(dir)) << "no memory.events: not known, not zero";
  std::ofstream(dir + "/memory.events") << "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n";
  auto ev = cgroup_jobs::read_memory_events(dir);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->oom_kill, 1);
  EXPECT_EQ(ev->max, 5);
  std::system(("rm -rf " + dir).c_str());
}
