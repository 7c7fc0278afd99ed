// owner_liveness: which unfinished runs have lost their owner.
#include "runtime/liveness.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

run_row unfinished(const std::string& host, int32_t pid, const std::string& owner) {
  run_row r;
  r.run_id = "r";
  r.status = run_status::running;
  r.host = host;
  r.pid = pid;
  r.owner = owner;
  r.updated_at = caf::make_timestamp();
  r.heartbeat_at = r.updated_at;
  return r;
}

} // namespace

TEST(LivenessTest, ThisProcessIsAliveAndItsTokenNamesIt) {
  auto host = this_host();
  auto token = owner_token(host);
  EXPECT_EQ(token.rfind(host + ":" + std::to_string(::getpid()) + ":", 0), 0u) << token;
  auto r = unfinished(host, static_cast<int32_t>(::getpid()), token);
  EXPECT_FALSE(owner_liveness(r, host, caf::make_timestamp()).lost);
  EXPECT_EQ(status_with_owner(r, host, caf::make_timestamp()), "running");
}

TEST(LivenessTest, AReusedPidIsNotTheOwner) {
  auto host = this_host();
  auto token = owner_token(host);
  auto start = token.substr(token.rfind(':') + 1);
  auto r = unfinished(host, static_cast<int32_t>(::getpid()),
                      host + ":" + std::to_string(::getpid()) + ":" + start + "1");
  auto s = owner_liveness(r, host, caf::make_timestamp());
  EXPECT_TRUE(s.lost);
  EXPECT_NE(s.why.find("belongs to another process"), std::string::npos) << s.why;
}

TEST(LivenessTest, AGoneOrZombieOwnerIsLost) {
  auto host = this_host();
  pid_t child = ::fork();
  if (child == 0)
    ::_exit(0);
  ::usleep(100 * 1000);  // exited, not reaped: a zombie
  auto r = unfinished(host, child, host + ":" + std::to_string(child) + ":1");
  auto s = owner_liveness(r, host, caf::make_timestamp());
  EXPECT_TRUE(s.lost);
  EXPECT_NE(s.why.find("zombie"), std::string::npos) << s.why;
  EXPECT_EQ(status_with_owner(r, host, caf::make_timestamp()), "running (owner lost)");
  ::waitpid(child, nullptr, 0);
  s = owner_liveness(r, host, caf::make_timestamp());
  EXPECT_TRUE(s.lost);
  EXPECT_NE(s.why.find("is gone"), std::string::npos) << s.why;
}

TEST(LivenessTest, AnotherHostsRunIsJudgedByItsHeartbeat) {
  auto now = caf::make_timestamp();
  auto r = unfinished("elsewhere", 1, "elsewhere:1:99");
  r.heartbeat_at = now - 5s;
  EXPECT_FALSE(owner_liveness(r, this_host(), now).lost) << "a fresh heartbeat";
  r.heartbeat_at = now - 21s;
  auto s = owner_liveness(r, this_host(), now);
  EXPECT_TRUE(s.lost);
  EXPECT_NE(s.why.find("sent no heartbeat for 21s"), std::string::npos) << s.why;
  r.status = run_status::failed;
  EXPECT_FALSE(owner_liveness(r, this_host(), now).lost) << "a finished run needs no owner";
}
