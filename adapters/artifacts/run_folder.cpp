#include "adapters/artifacts/run_folder.hpp"

#include <fcntl.h>

#include "adapters/artifacts/atomic_file.hpp"
#include "messages/errors.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace troupe {

caf::error make_directories(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty())
      continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      return caf::make_error(errc::os_error, "cannot create directory '" + cur
                                               + "': " + std::strerror(errno));
  }
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return caf::make_error(errc::os_error, "'" + path + "' is not a directory");
  return caf::none;
}

caf::expected<std::string> create_run_folder(const std::string& output_dir,
                                             caf::timestamp now) {
  if (auto err = make_directories(output_dir))
    return err;
  char resolved[PATH_MAX];
  if (::realpath(output_dir.c_str(), resolved) == nullptr)
    return caf::make_error(errc::os_error, "cannot resolve '" + output_dir
                                             + "': " + std::strerror(errno));
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
  std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", &tm);
  std::string base = std::string(resolved) + "/" + stamp;
  // Where this process left off in this second: many runs a second (the
  // coordinator) used to probe _1, _2, ... from the start, one failed mkdir
  // each, every time. Other processes' folders still make mkdir fail: on.
  static std::mutex mtx;
  static std::string last_base;
  static int last_n = -1;
  int first = 0;
  {
    std::lock_guard<std::mutex> guard{mtx};
    if (last_base == base)
      first = last_n + 1;
  }
  for (int n = first; n < first + 10000; ++n) {
    std::string dir = n == 0 ? base : base + "_" + std::to_string(n);
    if (::mkdir(dir.c_str(), 0755) == 0) {
      if (::mkdir((dir + "/logs").c_str(), 0755) != 0)
        return caf::make_error(errc::os_error, "cannot create '" + dir
                                                 + "/logs': " + std::strerror(errno));
      sync_directory(resolved);
      std::lock_guard<std::mutex> guard{mtx};
      if (last_base != base || n > last_n) {
        last_base = base;
        last_n = n;
      }
      return dir;
    }
    if (errno != EEXIST)
      return caf::make_error(errc::os_error, "cannot create run folder '" + dir
                                               + "': " + std::strerror(errno));
  }
  return caf::make_error(errc::os_error, "no free run folder name under '" + base + "'");
}

std::string read_from(const std::string& path, int64_t offset) {
  std::string data;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return data;
  char buf[65536];
  ssize_t n;
  auto at = static_cast<off_t>(offset);
  while ((n = ::pread(fd, buf, sizeof buf, at)) > 0) {
    data.append(buf, static_cast<size_t>(n));
    at += n;
  }
  ::close(fd);
  return data;
}

} // namespace troupe
