#include "adapters/process/process_table.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

using namespace troupe;

TEST(ProcessTableTest, ParsesStatLinesWithAwkwardNames) {
  proc_entry e;
  std::string line = "4242 (we (ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 "
                     "150 50 0 0 20 0 1 0 98765 1000000 321 18446744073709551615";
  ASSERT_TRUE(parse_stat_line(line, e));
  EXPECT_EQ(e.pid, 4242);
  EXPECT_EQ(e.comm, "we (ird) name");
  EXPECT_EQ(e.state, 'S');
  EXPECT_EQ(e.ppid, 1);
  EXPECT_EQ(e.pgrp, 4242);
  EXPECT_EQ(e.cpu_ticks, 200u);
  EXPECT_EQ(e.start_ticks, 98765u);
  EXPECT_EQ(e.rss_pages, 321);
  EXPECT_FALSE(parse_stat_line("garbage", e));
}

TEST(ProcessTableTest, TreeIsGroupPlusDescendantsWithoutZombies) {
  std::vector<proc_entry> t;
  auto add = [&](int pid, int ppid, int pgrp, char state) {
    proc_entry e;
    e.pid = pid;
    e.ppid = ppid;
    e.pgrp = pgrp;
    e.state = state;
    t.push_back(e);
  };
  add(100, 1, 100, 'S');   // leader
  add(101, 100, 100, 'S'); // child in the group
  add(102, 101, 555, 'S'); // grandchild that moved to its own group
  add(103, 100, 100, 'Z'); // zombie
  add(104, 1, 100, 'S');   // orphan still in the group
  add(200, 1, 200, 'S');   // unrelated
  std::vector<int32_t> pids;
  for (auto* p : tree_of(t, 100))
    pids.push_back(p->pid);
  EXPECT_EQ(pids, (std::vector<int32_t>{100, 101, 102, 104}));
  EXPECT_TRUE(tree_of(t, 0).empty());
}

TEST(ProcessTableTest, ScanFindsThisProcess) {
  auto table = scan_processes();
  bool found = false;
  for (const auto& p : table)
    if (p.pid == ::getpid()) {
      found = true;
      EXPECT_GT(p.rss_pages, 0);
    }
  EXPECT_TRUE(found);
}
