// run_queue: limits, priorities and FIFO, decided without any actor.
#include "actors/run_queue.hpp"

#include <gtest/gtest.h>

using namespace troupe;

namespace {

std::vector<std::string> ids(const std::vector<queued_run>& runs) {
  std::vector<std::string> out;
  for (auto& r : runs)
    out.push_back(r.run_id);
  return out;
}

using strings = std::vector<std::string>;

} // namespace

TEST(RunQueueTest, FiftyRunsUnderAGlobalLimitOfFourStartFourAtATimeInOrder) {
  run_queue q{4};
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(q.enqueue({"r" + std::to_string(i), "p", 0}));
  EXPECT_EQ(ids(q.admit()), (strings{"r0", "r1", "r2", "r3"}));
  EXPECT_TRUE(q.admit().empty()) << "never more than 4 running";
  int started = 4;
  for (int done = 0; done < 50; ++done) {
    q.finished("r" + std::to_string(done));
    auto next = q.admit();
    EXPECT_LE(q.running(), 4);
    for (auto& r : next)
      EXPECT_EQ(r.run_id, "r" + std::to_string(started++)) << "first come, first started";
  }
  EXPECT_EQ(started, 50);
  EXPECT_EQ(q.running(), 0);
  EXPECT_EQ(q.queued(), 0u);
}

TEST(RunQueueTest, HigherPriorityFirstFifoWithin) {
  run_queue q{1};
  q.enqueue({"low-1", "p", 0});
  q.enqueue({"high-1", "p", 5});
  q.enqueue({"low-2", "p", 0});
  q.enqueue({"high-2", "p", 5});
  strings order;
  for (int i = 0; i < 4; ++i) {
    auto next = q.admit();
    ASSERT_EQ(next.size(), 1u);
    order.push_back(next[0].run_id);
    q.finished(next[0].run_id);
  }
  EXPECT_EQ(order, (strings{"high-1", "high-2", "low-1", "low-2"}));
}

TEST(RunQueueTest, AFullPipelineDoesNotHoldUpOthers) {
  run_queue q{0};  // no global limit
  q.set_pipeline_limit("nightly", 1);
  q.enqueue({"n1", "nightly", 0});
  q.enqueue({"n2", "nightly", 0});
  q.enqueue({"a1", "adhoc", 0});
  EXPECT_EQ(ids(q.admit()), (strings{"n1", "a1"}));
  EXPECT_TRUE(q.admit().empty()) << "n2 waits for n1";
  q.finished("n1");
  EXPECT_EQ(ids(q.admit()), strings{"n2"});
  q.set_pipeline_limit("nightly", 0);  // limit lifted
  q.enqueue({"n3", "nightly", 0});
  EXPECT_EQ(ids(q.admit()), strings{"n3"});
}

TEST(RunQueueTest, CancelledBeforeStartAndDuplicates) {
  run_queue q{1};
  EXPECT_TRUE(q.enqueue({"a", "p", 0}));
  EXPECT_FALSE(q.enqueue({"a", "p", 0})) << "queued already";
  EXPECT_TRUE(q.enqueue({"b", "p", 0}));
  EXPECT_TRUE(q.remove("a"));
  EXPECT_FALSE(q.remove("a"));
  EXPECT_EQ(ids(q.admit()), strings{"b"});
  EXPECT_FALSE(q.enqueue({"b", "p", 0})) << "running already";
  q.finished("unknown");  // ignored
  EXPECT_EQ(q.running(), 1);
}
