#include "runtime/duration.hpp"

#include <gtest/gtest.h>

using namespace troupe;
using namespace std::chrono;

TEST(DurationTest, AcceptsUnitsAndPlainSeconds) {
  EXPECT_EQ(parse_duration("500ms"), caf::timespan{milliseconds(500)});
  EXPECT_EQ(parse_duration("30s"), caf::timespan{seconds(30)});
  EXPECT_EQ(parse_duration("10m"), caf::timespan{minutes(10)});
  EXPECT_EQ(parse_duration("1h"), caf::timespan{hours(1)});
  EXPECT_EQ(parse_duration("90"), caf::timespan{seconds(90)});
  EXPECT_EQ(parse_duration("2.5"), caf::timespan{milliseconds(2500)});
  EXPECT_EQ(parse_duration("0"), caf::timespan{0});
}

TEST(DurationTest, RejectsWhatIsNotADuration) {
  for (auto bad : {"", "-1s", "10x", "s", "1 s", "1.s", "ten", "1e3", "5sec", "99999999999999h"})
    EXPECT_FALSE(parse_duration(bad)) << bad;
}

TEST(DurationTest, FormatsForPeople) {
  EXPECT_EQ(format_duration(milliseconds(250)), "250ms");
  EXPECT_EQ(format_duration(milliseconds(1500)), "1.50s");
  EXPECT_EQ(format_duration(seconds(123)), "2m03s");
  EXPECT_EQ(format_duration(minutes(61)), "1h01m");
}
