// atomic_file: the two durable write patterns of a run folder.
//  - write_atomically: temp file in the same folder, write, fsync, rename,
//    fsync the folder. A crash leaves the previous complete version.
//  - line_appender: append one line and fsync before returning, so a crash
//    loses at most the line being written.
#pragma once

#include <caf/error.hpp>

#include <string>

namespace troupe {

caf::error write_atomically(const std::string& path, const std::string& content);

class line_appender {
public:
  line_appender() = default;
  ~line_appender();
  line_appender(const line_appender&) = delete;
  line_appender& operator=(const line_appender&) = delete;

  /// Opens (creates) `path` for appending.
  caf::error open(const std::string& path);

  /// Writes `line` plus '\n' in one write and fsyncs.
  caf::error append(const std::string& line);

private:
  int fd_ = -1;
  std::string path_;
};

/// fsyncs a directory so that entries created or renamed in it are durable.
void sync_directory(const std::string& dir);

/// Space held back on a run folder's filesystem (a preallocated file) so
/// that a run whose disk fills up can still write its final record: given
/// back with release(), or when destroyed.
class space_reserve {
public:
  space_reserve() = default;
  ~space_reserve();
  space_reserve(const space_reserve&) = delete;
  space_reserve& operator=(const space_reserve&) = delete;

  /// Preallocates `bytes` at `path`; errc::os_error (and nothing held) if
  /// the filesystem has not that much free.
  caf::error hold(const std::string& path, int64_t bytes);
  /// Gives the space back; false when nothing was held.
  bool release();
  bool held() const {
    return !path_.empty();
  }

private:
  std::string path_;
};

} // namespace troupe
