// Test support: run the real troupe binary in a temporary folder, and read
// what it left behind.
#pragma once

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace troupe::test {

/// A fresh folder under $TMPDIR, removed by the destructor.
class temp_dir {
public:
  temp_dir();
  ~temp_dir();
  const std::string& path() const { return path_; }
  /// Writes `content` to path()/name and returns the full path.
  std::string write(const std::string& name, const std::string& content) const;

private:
  std::string path_;
};

struct troupe_result {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
};

/// A running troupe process; stdout/stderr go to files in `dir`.
class troupe_process {
public:
  troupe_process(const std::vector<std::string>& args, const std::string& dir,
                 const std::vector<std::string>& extra_env = {});
  ~troupe_process();
  pid_t pid() const { return pid_; }
  const std::string& out_path() const { return out_path_; }
  const std::string& err_path() const { return err_path_; }
  /// Waits at most `limit`; on expiry kills it and fails the test.
  troupe_result wait(std::chrono::milliseconds limit = std::chrono::seconds(60));
  /// Polls `pred` every 20 ms until it holds or `limit` passes.
  template <class Pred>
  bool wait_until(Pred pred, std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred())
        return true;
      sleep_ms(20);
    }
    return pred();
  }
  static void sleep_ms(int ms);

private:
  pid_t pid_ = -1;
  std::string out_path_, err_path_;
  std::chrono::steady_clock::time_point t0_;
  bool reaped_ = false;
};

/// Runs troupe with `args` to completion.
troupe_result run_troupe(const std::vector<std::string>& args, const std::string& dir,
                         const std::vector<std::string>& extra_env = {});

std::string read_file(const std::string& path);
bool exists(const std::string& path);
/// The only run folder under `output`, or "" when there is none or several.
std::string single_run_dir(const std::string& output);
nlohmann::json read_json(const std::string& path);
/// Every line of a JSONL file, parsed (a parse error fails the test).
std::vector<nlohmann::json> read_jsonl(const std::string& path);
/// True when `pid` exists and is not a zombie.
bool alive(pid_t pid);
/// Live processes whose environment carries TROUPE_RUN_ID=`run_id`.
std::vector<int> processes_of_run(const std::string& run_id);
/// The job named `name` in `troupe show --json` output (a test failure if none).
nlohmann::json job_of(const nlohmann::json& run, const std::string& name);

} // namespace troupe::test
