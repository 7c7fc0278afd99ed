#include "runtime/cli/logs_command.hpp"

#include "actors/running_order.hpp"
#include "adapters/artifacts/run_folder.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"
#include "runtime/api_client.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

namespace troupe {

namespace {

struct stage_state {
  std::string name;
  int32_t attempts = 0;  // started so far
  bool ended = false;    // this stage will write no more
};

// Where a run's stages and logs come from.
class log_source {
public:
  virtual ~log_source() = default;
  /// The run's stages in pipeline order; false (said) on an error.
  virtual bool stages(std::vector<stage_state>& out, bool& run_ended) = 0;
  /// The log's bytes from `offset` (none when it does not exist yet).
  virtual std::string read(const std::string& stage, int32_t attempt, const std::string& stream,
                           int64_t offset) = 0;
  int failure = exit_code::usage;  // the exit code after a false
};

class store_source : public log_source {
public:
  store_source(std::unique_ptr<store> db, run_row run) : db_(std::move(db)), run_(std::move(run)) {
  }
  bool stages(std::vector<stage_state>& out, bool& run_ended) override {
    auto jobs = db_->jobs(run_.run_id);
    auto again = db_->runs_by_prefix(run_.run_id, 1);
    if (!jobs || !again) {
      std::fprintf(stderr, "troupe: %s\n", describe(!jobs ? jobs.error() : again.error()).c_str());
      failure = exit_code::internal;
      return false;
    }
    if (run_.run_dir.empty()) {
      std::fprintf(stderr, "troupe: run %s keeps no files (its pipeline has artifacts: store)\n",
                   run_.run_id.c_str());
      return false;
    }
    run_ended = !again->empty() && is_terminal(again->front().status);
    out.clear();
    for (auto& j : *jobs)
      out.push_back({j.job, j.attempts, run_ended || is_terminal(j.status)});
    return true;
  }
  std::string read(const std::string& stage, int32_t attempt, const std::string& stream,
                   int64_t offset) override {
    auto path = run_.run_dir + "/"
                + running_order::attempt_log(stage, attempt,
                                             stream == "stderr" ? "stderr.log" : "stdout.log");
    return read_from(path, offset);
  }

private:
  std::unique_ptr<store> db_;
  run_row run_;
};

class api_source : public log_source {
public:
  api_source(api_client api, std::string ref) : api_(std::move(api)), ref_(std::move(ref)) {
  }
  bool stages(std::vector<stage_state>& out, bool& run_ended) override {
    auto r = api_.get("/api/runs/" + ref_);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status != 200 || !j.is_object()) {
      std::fprintf(stderr, "troupe: %s\n", reply_error(r, api_.settings().server).c_str());
      failure = r.status >= 400 && r.status < 500 ? exit_code::usage : exit_code::internal;
      return false;
    }
    ref_ = j.value("run_id", ref_);  // (a prefix or a folder's name named it)
    auto st = parse_run_status(j.value("status", ""));
    run_ended = !st || is_terminal(*st);
    out.clear();
    for (auto& job : j["jobs"]) {
      auto status = parse_stage_status(job.value("status", "pending"));
      auto& tries = job["attempts"];  // the attempts themselves, or their count
      auto started = tries.is_array() ? static_cast<int32_t>(tries.size())
                                      : tries.is_number() ? tries.get<int32_t>() : 0;
      out.push_back({job.value("job", ""), started, run_ended || (status && is_terminal(*status))});
    }
    return true;
  }
  std::string read(const std::string& stage, int32_t attempt, const std::string& stream,
                   int64_t offset) override {
    auto r = api_.get("/api/runs/" + ref_ + "/logs/" + stage + "?stream=" + stream + "&attempt="
                      + std::to_string(attempt) + "&offset=" + std::to_string(offset));
    return r.status == 200 ? r.body : std::string{};
  }

private:
  api_client api_;
  std::string ref_;
};

// The last `n` lines of `text` (all of it when n < 0).
std::string last_lines(const std::string& text, int n) {
  if (n < 0)
    return text;
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n')
    --pos;
  for (int k = 0; k < n && pos != std::string::npos && pos > 0; ++k)
    pos = text.rfind('\n', pos - 1);
  if (pos == std::string::npos || n == 0)
    return n == 0 ? std::string{} : text;
  return text.substr(pos == 0 ? 0 : pos + 1);
}

void out(const std::string& bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
  std::fflush(stdout);
}

int print_logs(log_source& src, const store_command_options& o) {
  std::vector<stage_state> stages;
  bool run_ended = false;
  if (!src.stages(stages, run_ended))
    return src.failure;
  std::vector<std::string> chosen;
  if (!o.stage.empty()) {
    std::string names;
    bool found = false;
    for (auto& s : stages) {
      names += (names.empty() ? "" : ", ") + s.name;
      found = found || s.name == o.stage;
    }
    if (!found) {
      std::fprintf(stderr, "troupe: run %s has no stage '%s' (stages: %s)\n", o.run_id.c_str(),
                   o.stage.c_str(), names.c_str());
      return exit_code::usage;
    }
    chosen.push_back(o.stage);
  } else {
    for (auto& s : stages)
      chosen.push_back(s.name);
  }
  bool headers = o.stage.empty();
  for (auto& name : chosen) {
    int64_t offset = 0;
    int32_t attempt = o.attempt;
    bool shown_header = false;
    for (;;) {
      const stage_state* st = nullptr;
      for (auto& s : stages)
        if (s.name == name)
          st = &s;
      if (attempt == 0 && st->attempts > 0)
        attempt = st->attempts;  // the latest (a follow moves on to each retry)
      if (attempt > 0 && attempt > std::max<int32_t>(1, st->attempts) && st->ended) {
        std::fprintf(stderr, "troupe: stage '%s' has no attempt %d\n", name.c_str(), attempt);
        return exit_code::usage;
      }
      if (attempt > 0) {
        if (headers && !shown_header) {
          out(std::string(offset == 0 && &name != &chosen.front() ? "\n" : "") + "==> " + name
              + " (attempt " + std::to_string(attempt) + ", " + o.stream + ") <==\n");
          shown_header = true;
        }
        auto bytes = src.read(name, attempt, o.stream, offset);
        out(offset == 0 ? last_lines(bytes, o.tail) : bytes);
        offset += static_cast<int64_t>(bytes.size());
      }
      if (!o.follow || st->ended)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (!src.stages(stages, run_ended))
        return src.failure;
      if (attempt > 0) {
        const stage_state* now = nullptr;
        for (auto& s : stages)
          if (s.name == name)
            now = &s;
        if (now->ended || (o.attempt == 0 && now->attempts > attempt)) {
          // What came in since the last look, then the end (or the retry).
          out(src.read(name, attempt, o.stream, offset));
          if (now->ended && now->attempts <= attempt)
            break;
          attempt = now->attempts;
          offset = 0;
          out("==> " + name + " (attempt " + std::to_string(attempt) + ", " + o.stream + ") <==\n");
        }
      }
    }
  }
  return 0;
}

} // namespace

int logs_command(const store_command_options& o, bool through_api) {
  if (o.stream != "stdout" && o.stream != "stderr") {
    std::fprintf(stderr, "troupe: --stream '%s' is not stdout or stderr\n", o.stream.c_str());
    return exit_code::usage;
  }
  if (through_api) {
    client_settings s;
    if (auto err = resolve_client_settings(o, s)) {
      std::fprintf(stderr, "troupe: %s\n", err->c_str());
      return exit_code::usage;
    }
    api_source src{api_client{s}, o.run_id};
    return print_logs(src, o);
  }
  auto opened = open_run(o);
  if (!opened) {
    std::fprintf(stderr, "troupe: %s\n", describe(opened.error()).c_str());
    return exit_code::usage;
  }
  store_source src{std::move(opened->first), std::move(opened->second)};
  return print_logs(src, o);
}

} // namespace troupe
