// The bytes troupe_test_emitter writes, so a test can rebuild them exactly.
#pragma once

#include <cstddef>
#include <string>

namespace troupe::test {

constexpr size_t emitter_chunk = 64 * 1024;

/// Chunk `i` of stdout: every byte value occurs, including '\0' and '\n'.
inline std::string emitter_stdout_chunk(size_t i) {
  std::string s(emitter_chunk, '\0');
  for (size_t j = 0; j < emitter_chunk; ++j)
    s[j] = static_cast<char>((i * 131 + j * 7 + (j >> 9)) & 0xff);
  return s;
}

/// The stderr line written after stdout chunk `i`.
inline std::string emitter_stderr_line(size_t i) {
  return "stderr line " + std::to_string(i) + " after chunk " + std::to_string(i) + "\n";
}

} // namespace troupe::test
