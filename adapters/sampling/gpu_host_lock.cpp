#include "adapters/sampling/gpu_host_lock.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace troupe {

std::string default_gpu_lock_dir() {
  if (const char* d = std::getenv("TROUPE_GPU_LOCK_DIR"); d != nullptr && *d != '\0')
    return d;
  if (::access("/run/lock", W_OK) == 0)
    return "/run/lock";
  return "/tmp";
}

gpu_host_locks::gpu_host_locks(std::string dir) : dir_(std::move(dir)) {
}

gpu_host_locks::~gpu_host_locks() {
  for (int fd : fds_)
    ::close(fd);  // the locks go with them
}

std::string gpu_host_locks::path_of(const std::string& uuid) const {
  std::string name;
  for (char c : uuid)
    name += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return dir_ + "/troupe-gpu-" + name + ".lock";
}

namespace {

std::string holder_in(int fd) {
  char buf[256];
  auto n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0)
    return "another process";
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0'))
    s.pop_back();
  return s.empty() ? "another process" : s;
}

} // namespace

std::map<std::string, std::string> gpu_host_locks::take(const std::vector<std::string>& uuids,
                                                        const std::string& who) {
  std::map<std::string, std::string> refused;
  ::mkdir(dir_.c_str(), 01777);  // (exists already, mostly)
  for (auto& uuid : uuids) {
    auto path = path_of(uuid);
    // Readable and writable by every user of the host: brokers of other
    // users must see (and contend for) the same lock.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    bool writable = fd >= 0;
    if (fd < 0)
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      refused[uuid] = "cannot open " + path + ": " + std::strerror(errno);
      continue;
    }
    if (writable)
      ::fchmod(fd, 0666);  // (umask)
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      refused[uuid] = errno == EWOULDBLOCK ? holder_in(fd)
                                           : "cannot lock " + path + ": " + std::strerror(errno);
      ::close(fd);
      continue;
    }
    if (writable) {
      auto line = who + "\n";
      if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, line.data(), line.size(), 0) < 0) {
        // (who holds it is for messages only)
      }
    }
    fds_.push_back(fd);
  }
  return refused;
}

} // namespace troupe
