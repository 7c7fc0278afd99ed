// progress: what `troupe run` shows while a run is live. One line per stage
// start and end (with the tail of its stderr when it did not succeed); on a
// TTY also a status line with the elapsed time that is redrawn in place.
#pragma once

#include "messages/run.hpp"

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace troupe {

class progress_display {
public:
  /// `run_dir`: where the stages' logs are (for the stderr tail).
  progress_display(std::FILE* out, bool tty, std::string run_dir);

  void on_event(const progress_event& ev);

  /// Redraws the status line (TTY only); call a few times a second.
  void tick();

  /// Prints a line, keeping the status line below it (TTY).
  void line(const std::string& text);

  /// Where the last lines of a stage's stderr come from (given the log's
  /// path relative to the run folder): by default the file in `run_dir`;
  /// the CLI client asks the coordinator's API instead.
  using tail_source = std::function<std::vector<std::string>(const std::string& rel, size_t n)>;
  void set_tail_source(tail_source f) {
    tail_ = std::move(f);
  }

private:
  void clear_status();

  std::FILE* out_;
  bool tty_;
  std::string run_dir_;
  bool status_shown_ = false;
  std::string running_;  // "[2/7] normalize"
  std::chrono::steady_clock::time_point run_start_;
  std::chrono::steady_clock::time_point stage_start_;
  tail_source tail_;
};

} // namespace troupe
