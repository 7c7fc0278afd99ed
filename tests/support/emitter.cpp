// troupe_test_emitter CHUNKS: writes CHUNKS x 64 KiB of known bytes to stdout,
// a line to stderr after each chunk (interleaved), then exits 0.
#include "emitter_pattern.hpp"

#include <unistd.h>

#include <cstdlib>

static bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    auto n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0)
      return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

int main(int argc, char** argv) {
  size_t chunks = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1;
  for (size_t i = 0; i < chunks; ++i)
    if (!write_all(1, troupe::test::emitter_stdout_chunk(i))
        || !write_all(2, troupe::test::emitter_stderr_line(i)))
      return 1;
  return 0;
}
