// process_runner: real processes, real files, its own reaper thread.
#include "adapters/process/process_runner.hpp"
#include "adapters/process/process_table.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct ProcessRunnerTest : ::testing::Test {
  std::string dir;
  std::mutex mtx;
  std::condition_variable cv;
  std::optional<process_exit> exit_info;

  ProcessRunnerTest() {
    char tmpl[] = "/tmp/troupe-runner-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~ProcessRunnerTest() override {
    std::system(("rm -rf " + dir).c_str());
  }
  spawn_request request(std::vector<std::string> argv) {
    return spawn_request{std::move(argv), dir, {"PATH=/usr/bin:/bin", "X=42"},
                         dir + "/out.log", dir + "/err.log"};
  }
  process_runner::exit_callback on_exit() {
    return [this](const process_exit& e) {
      std::lock_guard<std::mutex> guard{mtx};
      exit_info = e;
      cv.notify_all();
    };
  }
  // Spawns and waits for the runner's answer.
  caf::expected<int32_t> spawn(process_runner& runner, spawn_request req,
                               std::string* cgroup = nullptr) {
    std::mutex m;
    std::condition_variable c;
    std::optional<caf::expected<int32_t>> got;
    runner.spawn(std::move(req),
                 [&](caf::expected<launched_process> p) {
                   std::lock_guard<std::mutex> g{m};
                   if (p && cgroup != nullptr)
                     *cgroup = p->cgroup;
                   got = p ? caf::expected<int32_t>{p->pid}
                           : caf::expected<int32_t>{p.error()};
                   c.notify_all();
                 },
                 on_exit());
    std::unique_lock<std::mutex> lock{m};
    c.wait(lock, [&] { return got.has_value(); });
    return std::move(*got);
  }
  // Asks the runner to fsync and close the logs; true once it says done.
  bool sync(process_runner& runner, int32_t pid) {
    std::mutex m;
    std::condition_variable c;
    bool synced = false;
    runner.sync_logs(pid, [&](std::string) {
      std::lock_guard<std::mutex> g{m};
      synced = true;
      c.notify_all();
    });
    std::unique_lock<std::mutex> lock{m};
    return c.wait_for(lock, 5s, [&] { return synced; });
  }
  bool wait_exit(std::chrono::milliseconds limit = 5s) {
    std::unique_lock<std::mutex> lock{mtx};
    return cv.wait_for(lock, limit, [this] { return exit_info.has_value(); });
  }
  std::string read(const std::string& name) {
    std::ifstream in(dir + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

} // namespace

TEST_F(ProcessRunnerTest, RunsInItsOwnGroupWithLogsEnvAndCwd) {
  process_runner runner{false, false};
  auto pid = spawn(runner,
    request({"/bin/sh", "-c", "echo $X; pwd; echo oops >&2; ps -o pgid= -p $$; exit 3"}));
  ASSERT_TRUE(pid);
  ASSERT_TRUE(wait_exit());
  EXPECT_EQ(exit_info->pid, *pid);
  EXPECT_TRUE(WIFEXITED(exit_info->wait_status));
  EXPECT_EQ(WEXITSTATUS(exit_info->wait_status), 3);
  ASSERT_TRUE(sync(runner, *pid));
  std::istringstream out(read("out.log"));
  std::string x, cwd, pgid;
  std::getline(out, x);
  std::getline(out, cwd);
  std::getline(out, pgid);
  EXPECT_EQ(x, "42");
  EXPECT_EQ(cwd, dir);
  EXPECT_EQ(std::stoi(pgid), *pid) << "leader of its own process group";
  EXPECT_EQ(read("err.log"), "oops\n");
}

TEST_F(ProcessRunnerTest, ChildStartsWithSigtermUnblockedEvenIfParentBlocksIt) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  process_runner runner{false, false};
  auto pid = spawn(runner, request({"sleep", "30"}));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(pid);
  ::kill(-*pid, SIGTERM);  // the process group, as troupe stops a tree
  ASSERT_TRUE(wait_exit());
  EXPECT_TRUE(WIFSIGNALED(exit_info->wait_status));
  EXPECT_EQ(WTERMSIG(exit_info->wait_status), SIGTERM);
}

TEST_F(ProcessRunnerTest, ASignalToTheRecordedPidFromSomeoneElseReachesTheProgram) {
  process_runner runner{false, false};
  ASSERT_FALSE(runner.exec_shim().empty()) << "troupe-exec not found";
  auto pid = spawn(runner, request({"sleep", "30"}));
  ASSERT_TRUE(pid);
  // An operator's `kill PID` (not troupe's parent process): troupe-exec
  // passes it on, and reports the program's end as its own.
  ASSERT_EQ(std::system(("kill -TERM " + std::to_string(*pid)).c_str()), 0);
  ASSERT_TRUE(wait_exit());
  EXPECT_TRUE(WIFSIGNALED(exit_info->wait_status));
  EXPECT_EQ(WTERMSIG(exit_info->wait_status), SIGTERM);
}

TEST_F(ProcessRunnerTest, PeakMemoryIsTheProgramsOwn) {
  // This test process has touched 96 MiB, which a program started straight
  // from it would inherit as its ru_maxrss.
  std::vector<char> ballast(96 << 20, 1);
  process_runner runner{false, false};
  auto pid = spawn(runner, request({"true"}));
  ASSERT_TRUE(pid);
  ASSERT_TRUE(wait_exit());
  EXPECT_GT(exit_info->max_rss_bytes, 0);
  EXPECT_LT(exit_info->max_rss_bytes, 5 << 20) << "true's peak includes its spawner's";
  EXPECT_EQ(ballast[12345], 1);
}

TEST_F(ProcessRunnerTest, SpawnErrorsNameWhatFailed) {
  process_runner runner{false, false};
  auto missing = spawn(runner, request({"no-such-program-troupe"}));
  ASSERT_FALSE(missing);
  EXPECT_NE(caf::to_string(missing.error()).find("cannot start 'no-such-program-troupe'"),
            std::string::npos);
  auto req = request({"true"});
  req.cwd = dir + "/absent";
  auto bad_cwd = spawn(runner, req);
  ASSERT_FALSE(bad_cwd);
  EXPECT_NE(caf::to_string(bad_cwd.error()).find("working directory"), std::string::npos);
  req = request({"true"});
  req.stdout_path = dir + "/absent/out.log";
  auto bad_log = spawn(runner, req);
  ASSERT_FALSE(bad_log);
  EXPECT_NE(caf::to_string(bad_log.error()).find("cannot open log"), std::string::npos);
}

TEST_F(ProcessRunnerTest, ReportsRusage) {
  process_runner runner{false, false};
  // ~0.3 s of CPU in the leader itself.
  auto pid = spawn(runner,
    request({"/bin/sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"}));
  ASSERT_TRUE(pid);
  ASSERT_TRUE(wait_exit(20s));
  EXPECT_GT(exit_info->cpu_seconds, 0.05);
  EXPECT_GT(exit_info->max_rss_bytes, 100 * 1024);
}

TEST_F(ProcessRunnerTest, CgroupHoldsAnEscapedDaemonUntilItIsKilled) {
  process_runner runner{false, true};
  if (runner.tracking().rfind("cgroup", 0) != 0)
    GTEST_SKIP() << "no writable cgroup v2 here: " << runner.tracking();
  std::string cgroup;
  // The daemon leaves the process group (setsid) and is orphaned at once.
  auto pid = spawn(runner,
                   request({"/bin/sh", "-c", "(setsid sleep 300 & echo $! > d.pid); exit 0"}),
                   &cgroup);
  ASSERT_TRUE(pid);
  ASSERT_FALSE(cgroup.empty());
  ASSERT_TRUE(wait_exit());
  int daemon = 0;
  for (int i = 0; i < 100 && daemon == 0; ++i) {
    std::ifstream in(dir + "/d.pid");
    in >> daemon;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(daemon, 0);
  EXPECT_EQ(live_tree(*pid, cgroup), std::vector<int32_t>{daemon})
    << "the cgroup still sees the escaped daemon";
  EXPECT_EQ(signal_tree(*pid, cgroup, SIGKILL), 1);
  for (int i = 0; i < 100 && !live_tree(*pid, cgroup).empty(); ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(live_tree(*pid, cgroup).empty());
  ASSERT_TRUE(sync(runner, *pid));
  struct stat st{};
  EXPECT_NE(::stat(cgroup.c_str(), &st), 0) << "job cgroup removed after the sync";
}

TEST_F(ProcessRunnerTest, CgroupsCanBeTurnedOff) {
  ::setenv("TROUPE_CGROUP_ROOT", "off", 1);
  process_runner runner{false, true};
  ::unsetenv("TROUPE_CGROUP_ROOT");
  EXPECT_EQ(runner.tracking(), "process group (disabled by TROUPE_CGROUP_ROOT=off)");
  process_runner plain{false, false};
  EXPECT_EQ(plain.tracking(), "process group (cgroups not requested)");
}
