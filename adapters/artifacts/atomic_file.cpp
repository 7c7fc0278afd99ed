#include "adapters/artifacts/atomic_file.hpp"

#include "messages/errors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace troupe {

namespace {

caf::error os_error(const std::string& what, const std::string& path, int err) {
  return caf::make_error(errc::os_error, what + " '" + path + "': " + std::strerror(err));
}

bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    auto n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

std::string parent_of(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

} // namespace

void sync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

caf::error write_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return os_error("cannot create", tmp, errno);
  if (!write_all(fd, content.data(), content.size()) || ::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return os_error("cannot write", tmp, e);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return os_error("cannot rename onto", path, e);
  }
  sync_directory(parent_of(path));
  return caf::none;
}

line_appender::~line_appender() {
  if (fd_ >= 0)
    ::close(fd_);
}

caf::error line_appender::open(const std::string& path) {
  if (fd_ >= 0)
    ::close(fd_);
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    return os_error("cannot open", path, errno);
  sync_directory(parent_of(path));
  return caf::none;
}

caf::error line_appender::append(const std::string& line) {
  if (fd_ < 0)
    return caf::make_error(errc::bad_state, "appender for '" + path_ + "' is not open");
  std::string buf = line;
  buf.push_back('\n');
  if (!write_all(fd_, buf.data(), buf.size()) || ::fdatasync(fd_) != 0)
    return os_error("cannot append to", path_, errno);
  return caf::none;
}

space_reserve::~space_reserve() {
  release();
}

caf::error space_reserve::hold(const std::string& path, int64_t bytes) {
  release();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return caf::make_error(errc::os_error, "cannot create '" + path + "': " + std::strerror(errno));
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (rc == 0 && ::fsync(fd) != 0)
    rc = errno;
  ::close(fd);
  if (rc != 0) {
    ::unlink(path.c_str());
    return caf::make_error(errc::os_error, "cannot hold " + std::to_string(bytes >> 10)
                                             + " KiB at '" + path + "': " + std::strerror(rc));
  }
  path_ = path;
  return caf::none;
}

bool space_reserve::release() {
  if (path_.empty())
    return false;
  ::unlink(path_.c_str());
  path_.clear();
  return true;
}

} // namespace troupe
