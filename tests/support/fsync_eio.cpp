// Test support, loaded with LD_PRELOAD: fsync and fdatasync fail with EIO
// for every file whose path holds $TROUPE_TEST_EIO_PATH (a substring), as a
// failing disk makes them fail; with $TROUPE_TEST_EIO_AFTER, only once that
// file exists (a stage creates it: the disk fails mid-run). Everything else
// goes to libc.
#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

bool doomed(int fd) {
  const char* pattern = std::getenv("TROUPE_TEST_EIO_PATH");
  if (pattern == nullptr || *pattern == '\0')
    return false;
  if (const char* after = std::getenv("TROUPE_TEST_EIO_AFTER"))
    if (::access(after, F_OK) != 0)
      return false;
  char link[64];
  char path[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  auto n = ::readlink(link, path, sizeof path - 1);
  if (n <= 0)
    return false;
  path[n] = '\0';
  return std::strstr(path, pattern) != nullptr;
}

template <class Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

} // namespace

extern "C" int fsync(int fd) {
  if (doomed(fd)) {
    errno = EIO;
    return -1;
  }
  static auto real = next<int (*)(int)>("fsync");
  return real(fd);
}

extern "C" int fdatasync(int fd) {
  if (doomed(fd)) {
    errno = EIO;
    return -1;
  }
  static auto real = next<int (*)(int)>("fdatasync");
  return real(fd);
}
