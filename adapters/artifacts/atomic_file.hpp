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

} // namespace troupe
