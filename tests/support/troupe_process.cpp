#include "troupe_process.hpp"

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace troupe::test {

temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/troupe-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  if (std::getenv("TROUPE_KEEP_TEST_DIRS") == nullptr)
    std::system(("rm -rf '" + path_ + "'").c_str());
}

std::string temp_dir::write(const std::string& name, const std::string& content) const {
  auto p = path_ + "/" + name;
  std::ofstream(p) << content;
  return p;
}

void troupe_process::sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

troupe_process::troupe_process(const std::vector<std::string>& args, const std::string& dir,
                               const std::vector<std::string>& extra_env) {
  static int counter = 0;
  ++counter;
  out_path_ = dir + "/troupe." + std::to_string(counter) + ".out";
  err_path_ = dir + "/troupe." + std::to_string(counter) + ".err";
  std::vector<std::string> argv_s{TROUPE_BIN};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  // `extra_env` replaces what it names ("NAME=" sets it empty; the last
  // entry for a name counts).
  auto overridden = [&](const char* e) {
    for (auto& x : extra_env) {
      auto eq = x.find('=');
      if (eq != std::string::npos && std::strncmp(e, x.c_str(), eq + 1) == 0)
        return true;
    }
    return false;
  };
  bool lock_dir_named = overridden("TROUPE_GPU_LOCK_DIR=");
  for (char** e = environ; *e; ++e) {
    lock_dir_named |= std::strncmp(*e, "TROUPE_GPU_LOCK_DIR=", 20) == 0;
    if (!overridden(*e))
      env_s.emplace_back(*e);
  }
  // Every test's fake NVML shows the same GPU UUIDs: each test directory
  // gets its own host lock folder, so tests run side by side do not take
  // each other's GPUs (processes of one test share theirs).
  if (!lock_dir_named)
    env_s.push_back("TROUPE_GPU_LOCK_DIR=" + dir + "/.gpu-locks");
  for (size_t i = 0; i < extra_env.size(); ++i) {
    // A later entry for a name wins over an earlier one.
    auto name = extra_env[i].substr(0, extra_env[i].find('=') + 1);
    bool later = false;
    for (size_t k = i + 1; k < extra_env.size() && !later; ++k)
      later = extra_env[k].compare(0, name.size(), name) == 0;
    if (!later)
      env_s.push_back(extra_env[i]);
  }
  std::vector<char*> envp;
  for (auto& e : env_s)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  t0_ = std::chrono::steady_clock::now();
  int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    throw std::runtime_error("cannot start troupe");
}

troupe_process::~troupe_process() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

troupe_result troupe_process::wait(std::chrono::milliseconds limit) {
  troupe_result r;
  int status = 0;
  auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto rc = ::waitpid(pid_, &status, WNOHANG);
    if (rc == pid_)
      break;
    if (std::chrono::steady_clock::now() > end) {
      ADD_FAILURE() << "troupe did not finish within " << limit.count() << " ms; killed";
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    sleep_ms(10);
  }
  reaped_ = true;
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - t0_);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_path_);
  r.err = read_file(err_path_);
  return r;
}

troupe_result run_troupe(const std::vector<std::string>& args, const std::string& dir,
                         const std::vector<std::string>& extra_env) {
  troupe_process p{args, dir, extra_env};
  return p.wait();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::string single_run_dir(const std::string& output) {
  std::vector<std::string> found;
  if (DIR* d = ::opendir(output.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.' && e->d_type == DT_DIR)  // not troupe.db and its WAL
        found.push_back(output + "/" + e->d_name);
    ::closedir(d);
  }
  return found.size() == 1 ? found[0] : std::string();
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_file(path));
}

nlohmann::json job_of(const nlohmann::json& run, const std::string& name) {
  for (auto& j : run["jobs"])
    if (j["job"] == name)
      return j;
  ADD_FAILURE() << "no job " << name;
  return nlohmann::json{};
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    try {
      lines.push_back(nlohmann::json::parse(line));
    } catch (const std::exception& e) {
      ADD_FAILURE() << path << ": line " << lines.size() + 1 << " does not parse: " << e.what();
    }
  }
  return lines;
}

bool alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line))
    return false;
  auto rp = line.rfind(')');
  return rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] != 'Z';
}

std::vector<int> processes_of_run(const std::string& run_id) {
  std::vector<int> out;
  auto needle = "TROUPE_RUN_ID=" + run_id + '\0';
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      int pid = std::atoi(e->d_name);
      if (pid <= 0 || !alive(pid))
        continue;
      auto env = read_file("/proc/" + std::string(e->d_name) + "/environ");
      if (env.rfind(needle, 0) == 0 || env.find('\0' + needle) != std::string::npos)
        out.push_back(pid);
    }
    ::closedir(d);
  }
  return out;
}

} // namespace troupe::test
