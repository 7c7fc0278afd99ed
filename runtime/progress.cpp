#include "runtime/progress.hpp"

#include "runtime/duration.hpp"

#include <vector>

namespace troupe {

namespace {

std::string pad(std::string s, size_t width) {
  if (s.size() < width)
    s.append(width - s.size(), ' ');
  return s;
}

std::string clock_text(std::chrono::steady_clock::duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

// The last `n` lines of a file, reading at most its last 4 KiB.
std::vector<std::string> tail_lines(const std::string& path, size_t n) {
  std::vector<std::string> lines;
  std::FILE* f = std::fopen(path.c_str(), "rbe");
  if (f == nullptr)
    return lines;
  std::fseek(f, 0, SEEK_END);
  long size = std::ftell(f);
  long from = size > 4096 ? size - 4096 : 0;
  std::fseek(f, from, SEEK_SET);
  std::string buf(static_cast<size_t>(size - from), '\0');
  buf.resize(std::fread(buf.data(), 1, buf.size(), f));
  std::fclose(f);
  size_t pos = 0;
  if (from > 0)  // drop the partial first line
    pos = buf.find('\n') == std::string::npos ? buf.size() : buf.find('\n') + 1;
  while (pos < buf.size()) {
    auto nl = buf.find('\n', pos);
    lines.push_back(buf.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    pos = nl == std::string::npos ? buf.size() : nl + 1;
  }
  if (lines.size() > n)
    lines.erase(lines.begin(), lines.end() - static_cast<long>(n));
  return lines;
}

} // namespace

progress_display::progress_display(std::FILE* out, bool tty, std::string run_dir)
  : out_(out), tty_(tty), run_dir_(std::move(run_dir)),
    run_start_(std::chrono::steady_clock::now()) {
}

void progress_display::clear_status() {
  if (tty_ && status_shown_) {
    std::fputs("\r\033[K", out_);
    status_shown_ = false;
  }
}

void progress_display::line(const std::string& text) {
  clear_status();
  auto end = text.find_last_not_of(' ');
  std::fwrite(text.data(), 1, end == std::string::npos ? 0 : end + 1, out_);
  std::fputc('\n', out_);
  std::fflush(out_);
  tick();
}

void progress_display::tick() {
  if (!tty_ || running_.empty())
    return;
  auto now = std::chrono::steady_clock::now();
  std::fprintf(out_, "\r\033[K  %s running %s (run %s)", running_.c_str(),
               clock_text(now - stage_start_).c_str(), clock_text(now - run_start_).c_str());
  std::fflush(out_);
  status_shown_ = true;
}

void progress_display::on_event(const progress_event& ev) {
  using kind = progress_event::kind_t;
  auto tag = "[" + std::to_string(ev.index + 1) + "/" + std::to_string(ev.total) + "]";
  switch (ev.kind) {
    case kind::stage_started:
      running_ = tag + " " + ev.stage.name;
      stage_start_ = std::chrono::steady_clock::now();
      line(tag + " " + pad(ev.stage.name, 18) + " started   " + ev.stage.command);
      break;
    case kind::stage_finished: {
      running_.clear();
      // The duration shown is the attempt's own; a stage with several
      // attempts also says its total (first start to end, waits included).
      const auto& s = ev.stage;
      auto own = s.attempts.empty() ? s.duration : s.attempts.back().duration;
      auto text = tag + " " + pad(s.name, 18) + " " + pad(to_string(s.status), 9) + " "
                  + pad(format_duration(own), 8);
      if (s.attempts.size() > 1 || s.status == stage_status::retrying) {
        auto n = static_cast<int32_t>(s.attempts.size());
        text += s.earlier_attempts == 0
                  ? " attempt " + std::to_string(n) + "/" + std::to_string(s.max_attempts)
                  : " rerun attempt " + std::to_string(n - s.earlier_attempts) + "/"
                      + std::to_string(s.max_attempts - s.earlier_attempts) + ", attempt "
                      + std::to_string(n) + " overall";
        if (s.status != stage_status::retrying)
          text += ", stage " + format_duration(s.duration) + " in all";
        else if (!s.attempts.empty() && s.attempts.back().retry_delay.count() > 0)
          text += " next in " + format_duration(s.attempts.back().retry_delay);
        text += s.error.empty() ? "" : ":";
      }
      if (!s.error.empty())
        text += " " + s.error;
      line(text);
      if (ev.stage.status != stage_status::succeeded && !ev.stage.stderr_log.empty()) {
        auto tail = tail_ ? tail_(ev.stage.stderr_log, 5)
                          : tail_lines(run_dir_ + "/" + ev.stage.stderr_log, 5);
        if (!tail.empty())
          line("      last lines of " + ev.stage.stderr_log + ":");
        for (auto& l : tail)
          line("      | " + l);
      }
      break;
    }
    case kind::run_finished: {
      running_.clear();
      for (size_t i = 0; i < ev.stages.size(); ++i) {
        const auto& s = ev.stages[i];
        if (s.status == stage_status::skipped)
          line("[" + std::to_string(i + 1) + "/" + std::to_string(ev.total) + "] "
               + pad(s.name, 18) + " skipped   " + s.error);
      }
      line("run " + to_string(ev.run) + " in "
           + format_duration(std::chrono::steady_clock::now() - run_start_) + " (exit "
           + std::to_string(ev.exit_code) + ")");
      break;
    }
  }
}

} // namespace troupe
