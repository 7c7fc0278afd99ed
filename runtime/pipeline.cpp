#include "runtime/pipeline.hpp"

#include "messages/errors.hpp"
#include "runtime/duration.hpp"
#include "runtime/host_env.hpp"
#include "runtime/template.hpp"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace troupe {

namespace {

const std::set<std::string> top_keys{"name",   "description", "defaults",   "stages",
                                     "supervision", "resume", "max_running",
                                     "artifacts", "max_parallel", "on_failure", "params",
                                     "probes",  "api_env"};
const std::set<std::string> default_keys{"timeout", "env", "cwd", "retry", "limits"};
const std::set<std::string> stage_keys{"name",   "description", "run",    "shell", "noop",
                                       "http",   "strategy",    "expect", "optional",
                                       "timeout", "cwd",        "env",    "retry",
                                       "limits", "depends_on", "matrix", "resources",
                                       "gpu_fallback"};
const std::set<std::string> param_keys{"default", "required", "description"};
const std::set<std::string> probe_keys{"name", "run", "shell", "timeout", "cwd", "env"};
const std::set<std::string> retry_keys{"max_attempts", "backoff", "on"};
const std::set<std::string> backoff_keys{"initial", "factor", "max", "jitter"};
const std::set<std::string> supervision_keys{"max_retries", "within"};
const std::set<std::string> http_keys{"url", "method", "headers", "body", "timeout"};
const std::set<std::string> limits_keys{"memory"};
const std::set<std::string> resources_keys{"cpus", "memory", "gpus", "gpu_memory"};
const std::set<std::string> methods{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};

// Hostile files are expected (a pipeline may come from anyone who can write
// to the pipelines folder). These bound the work and memory of a parse; each
// is reported by name when exceeded.
constexpr size_t max_file_bytes = 1 << 20;  // 1 MiB
constexpr int max_nesting = 32;              // blocks and flow collections
constexpr size_t max_stages = 1000;
constexpr size_t max_value_bytes = 64 * 1024;
constexpr size_t max_values = 200000;        // scalars read in all (alias expansion)

// `text` for a message: control characters and escapes shown as \n, \x1b,
// and cut at 60 bytes, so a key or value cannot rewrite the user's terminal
// or flood it.
std::string printable(const std::string& text) {
  std::string out;
  size_t shown = 0;
  for (unsigned char ch : text) {
    if (shown++ == 60) {
      out += "...(" + std::to_string(text.size()) + " bytes)";
      break;
    }
    if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

bool is_letter(char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

bool is_digit(char ch) {
  return ch >= '0' && ch <= '9';
}

// [A-Za-z_][A-Za-z0-9_]*
bool is_variable_name(const std::string& s) {
  if (s.empty() || !(is_letter(s[0]) || s[0] == '_'))
    return false;
  for (char ch : s)
    if (!(is_letter(ch) || is_digit(ch) || ch == '_'))
      return false;
  return true;
}

// [A-Za-z0-9][A-Za-z0-9._-]{0,63}: it names the log files, so no '/' or "..".
bool is_stage_name(const std::string& s) {
  if (s.empty() || s.size() > 64 || !(is_letter(s[0]) || is_digit(s[0])))
    return false;
  for (char ch : s)
    if (!(is_letter(ch) || is_digit(ch) || ch == '.' || ch == '_' || ch == '-'))
      return false;
  return true;
}

// http:// or https://, a non-empty host part, no whitespace anywhere.
bool is_http_url(const std::string& s) {
  auto lower = [](std::string x) {
    for (auto& ch : x)
      ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch);
    return x;
  };
  size_t start = 0;
  if (lower(s.substr(0, 7)) == "http://")
    start = 7;
  else if (lower(s.substr(0, 8)) == "https://")
    start = 8;
  else
    return false;
  for (char ch : s)
    if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f)
      return false;
  auto host_end = s.find_first_of("/?#", start);
  return (host_end == std::string::npos ? s.size() : host_end) > start;
}

// -?[0-9]{1,9}
std::optional<int32_t> small_integer(const std::string& s) {
  size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
  if (s.size() == i || s.size() - i > 9)
    return std::nullopt;
  int32_t v = 0;
  for (size_t k = i; k < s.size(); ++k) {
    if (!is_digit(s[k]))
      return std::nullopt;
    v = v * 10 + (s[k] - '0');
  }
  return i == 1 ? -v : v;
}

// How deeply the YAML text nests, without parsing it: block levels by
// indentation (and "- " items on one line), flow levels by brackets outside
// quotes; block scalars (| and >) are skipped. An over-estimate is fine:
// real pipelines nest 4 or 5 deep. It runs before yaml-cpp, whose recursion
// on deep input exhausts the stack.
struct nesting {
  int depth = 0;
  int line = 0;  // 1-based, where it first exceeded the limit (0: never)
};

nesting measure_nesting(const std::string& text, int limit) {
  nesting out;
  std::vector<size_t> indents;
  int flow = 0;
  size_t block_scalar_indent = std::string::npos;  // inside a | or > scalar
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string::npos)
      end = text.size();
    ++line_no;
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    size_t indent = 0;
    while (indent < line.size() && line[indent] == ' ')
      ++indent;
    if (indent == line.size() || line[indent] == '#')
      continue;  // blank or comment
    if (block_scalar_indent != std::string::npos) {
      if (indent > block_scalar_indent)
        continue;
      block_scalar_indent = std::string::npos;
    }
    size_t at = indent;
    int depth_here = 0;
    if (flow == 0) {
      while (!indents.empty() && indents.back() >= indent)
        indents.pop_back();
      indents.push_back(indent);
      // "- - - x": each dash opens a level of its own
      while (at + 1 < line.size() && line[at] == '-' && line[at + 1] == ' ') {
        ++depth_here;
        at += 2;
        while (at < line.size() && line[at] == ' ')
          ++at;
      }
    }
    char quote = 0;
    char prev = line[at > 0 ? at - 1 : 0];  // the last non-space before this char
    bool block_scalar = false;  // saw "| " or ">" after ':' or '-', nothing else since
    for (size_t k = at; k < line.size(); ++k) {
      char ch = line[k];
      if (quote) {
        if (ch == quote)
          quote = 0;
        continue;
      }
      if (ch == '"' || ch == '\'') {
        quote = ch;
      } else if (ch == '#' && (k == 0 || line[k - 1] == ' ')) {
        break;
      } else if (ch == '[' || ch == '{') {
        ++flow;
      } else if ((ch == ']' || ch == '}') && flow > 0) {
        --flow;
      }
      if ((ch == '|' || ch == '>') && flow == 0 && (prev == ':' || prev == '-' || k == at))
        block_scalar = true;
      else if (ch != ' ' && ch != '+' && ch != '-' && !is_digit(ch))
        block_scalar = false;
      if (ch != ' ')
        prev = ch;
      int depth = static_cast<int>(indents.size()) + depth_here + flow;
      if (depth > out.depth)
        out.depth = depth;
      if (depth > limit && out.line == 0)
        out.line = line_no;
    }
    if (block_scalar && quote == 0)
      block_scalar_indent = indent;
  }
  return out;
}

std::string join(const std::set<std::string>& keys) {
  std::string out;
  for (auto& k : keys)
    out += (out.empty() ? "" : ", ") + k;
  return out;
}

// Collects problems; each names file:line:col and the key path.
class checker {
public:
  explicit checker(std::string file) : file_(std::move(file)) {
  }

  void fail(const YAML::Node& at, const std::string& key, const std::string& what) {
    auto mark = at.Mark();
    std::ostringstream os;
    os << file_;
    if (mark.line >= 0)
      os << ':' << mark.line + 1 << ':' << mark.column + 1;
    os << ": " << (key.empty() ? "" : key + ": ") << what;
    problems_.push_back(os.str());
  }

  bool ok() const {
    return problems_.empty();
  }

  std::string text() const {
    std::string out;
    for (auto& p : problems_)
      out += (out.empty() ? "" : "\n") + p;
    return out;
  }

  // Keys of a mapping: unknown and duplicate keys are problems.
  void check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                  const std::string& where) {
    if (!spend(map, map.size()))
      return;
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      auto key = it->first.IsScalar() ? it->first.Scalar() : std::string("?");
      auto path = where.empty() ? printable(key) : where + "." + printable(key);
      if (allowed.count(key) == 0)
        fail(it->first, path, "unknown key (allowed: " + join(allowed) + ")");
      else if (!seen.insert(key).second)
        fail(it->first, path, "duplicate key");
    }
  }

  std::optional<std::string> scalar(const YAML::Node& n, const std::string& key) {
    if (!n.IsScalar()) {
      fail(n, key, "must be a single value, not a list or mapping");
      return std::nullopt;
    }
    if (!spend(n, 1))
      return std::nullopt;
    if (n.Scalar().size() > max_value_bytes) {
      fail(n, key, "value is " + std::to_string(n.Scalar().size()) + " bytes long; at most "
                     + std::to_string(max_value_bytes) + " are accepted");
      return std::nullopt;
    }
    return n.Scalar();
  }

  // Counts `count` values against the file's budget; false (reported once)
  // when spent, which only aliases expanded many times over can do.
  bool spend(const YAML::Node& at, size_t count) {
    if (values_ + count > max_values) {
      if (!over_budget_)
        fail(at, "", "more than " + std::to_string(max_values)
                       + " values in all (aliases expanded too many times?)");
      over_budget_ = true;
      return false;
    }
    values_ += count;
    return true;
  }

  std::optional<caf::timespan> duration(const YAML::Node& n, const std::string& key) {
    auto s = scalar(n, key);
    if (!s)
      return std::nullopt;
    auto d = parse_duration(*s);
    if (!d) {
      fail(n, key, "'" + printable(*s) + "' is not a duration (use 500ms, 30s, 10m, 1h or seconds)");
      return std::nullopt;
    }
    if (d->count() <= 0) {
      fail(n, key, "must be greater than zero");
      return std::nullopt;
    }
    return d;
  }

  std::optional<bool> boolean(const YAML::Node& n, const std::string& key) {
    auto s = scalar(n, key);
    if (!s)
      return std::nullopt;
    if (*s == "true" || *s == "yes")
      return true;
    if (*s == "false" || *s == "no")
      return false;
    fail(n, key, "'" + printable(*s) + "' is not true or false");
    return std::nullopt;
  }

  std::optional<double> number(const YAML::Node& n, const std::string& key, double lo,
                               double hi) {
    auto s = scalar(n, key);
    if (!s)
      return std::nullopt;
    // Plain decimals only: strtod also takes "nan", "inf", "1e999" and hex,
    // and a NaN compares false with every bound.
    bool plain = !s->empty() && s->size() <= 32;
    for (char ch : *s)
      plain = plain && (is_digit(ch) || ch == '.' || ch == '-');
    char* end = nullptr;
    double v = plain ? std::strtod(s->c_str(), &end) : 0;
    if (!plain || *end != '\0' || !std::isfinite(v)) {
      fail(n, key, "'" + printable(*s) + "' is not a number");
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      std::ostringstream os;
      os << "must be between " << lo << " and " << hi << ", not " << printable(*s);
      fail(n, key, os.str());
      return std::nullopt;
    }
    return v;
  }

  std::optional<int32_t> integer(const YAML::Node& n, const std::string& key, int32_t lo,
                                 int32_t hi) {
    auto s = scalar(n, key);
    if (!s)
      return std::nullopt;
    auto parsed = small_integer(*s);
    if (!parsed) {
      fail(n, key, "'" + printable(*s) + "' is not a whole number (at most 9 digits)");
      return std::nullopt;
    }
    auto v = *parsed;
    if (v < lo || v > hi) {
      fail(n, key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi)
                     + ", not " + *s);
      return std::nullopt;
    }
    return v;
  }

  // A retry block, overlaid on `out` (the defaults' block, for a stage).
  void retry(const YAML::Node& n, const std::string& key, retry_spec& out) {
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping with max_attempts, backoff, on");
      return;
    }
    check_keys(n, retry_keys, key);
    if (auto v = n["max_attempts"])
      if (auto i = integer(v, key + ".max_attempts", 1, 100))
        out.max_attempts = *i;
    if (auto b = n["backoff"]) {
      auto bkey = key + ".backoff";
      if (!b.IsMap()) {
        fail(b, bkey, "must be a mapping with initial, factor, max, jitter");
      } else {
        check_keys(b, backoff_keys, bkey);
        if (auto v = b["initial"])
          if (auto d = duration(v, bkey + ".initial"))
            out.backoff.initial = *d;
        if (auto v = b["factor"])
          if (auto f = number(v, bkey + ".factor", 1, 100))
            out.backoff.factor = *f;
        if (auto v = b["max"])
          if (auto d = duration(v, bkey + ".max"))
            out.backoff.max = *d;
        if (auto v = b["jitter"])
          if (auto j = number(v, bkey + ".jitter", 0, 1))
            out.backoff.jitter = *j;
        if (out.backoff.max < out.backoff.initial)
          fail(b, bkey, "max is shorter than initial");
      }
    }
    if (auto on = n["on"]) {
      if (!on.IsSequence()) {
        fail(on, key + ".on", "must be a list of failure codes");
        return;
      }
      static const std::set<std::string> retryable{
        "exit_nonzero", "signaled", "oom",          "timeout",      "spawn_failed", "lost",
        "blocked",      "rate_limited", "bad_response", "network",  "browser_unavailable",
        "unknown"};
      out.on.clear();
      for (size_t k = 0; k < on.size(); ++k) {
        auto item = key + ".on[" + std::to_string(k) + "]";
        auto s = scalar(on[k], item);
        if (!s)
          continue;
        auto code = parse_failure_code(*s);
        if (!code || retryable.count(*s) == 0)
          fail(on[k], item, "'" + printable(*s) + "' is not a failure code that can be retried (one of: "
                              + join(retryable) + ")");
        else
          out.on.push_back(*code);
      }
    }
  }

  // A size of at least 1 MiB (limits.memory, resources.memory, gpu_memory).
  std::optional<int64_t> size_value(const YAML::Node& v, const std::string& key) {
    auto s = scalar(v, key);
    if (!s)
      return std::nullopt;
    auto b = parse_size(*s);
    if (!b)
      fail(v, key, "'" + printable(*s) + "' is not a size with a unit (e.g. 512Mi, 2Gi, 500MB)");
    else if (*b < (1 << 20))
      fail(v, key, "'" + printable(*s) + "' is below 1 MiB; no program runs in that");
    else
      return *b;
    return std::nullopt;
  }

  void limits(const YAML::Node& n, const std::string& key, int64_t& memory) {
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping with memory");
      return;
    }
    check_keys(n, limits_keys, key);
    if (auto v = n["memory"])
      if (auto b = size_value(v, key + ".memory"))
        memory = *b;
  }

  // resources: {cpus, memory, gpus | gpu_memory}: what the node books for
  // the stage while it runs.
  void resources(const YAML::Node& n, const std::string& key, resource_request& out) {
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping with cpus, memory, gpus or gpu_memory");
      return;
    }
    check_keys(n, resources_keys, key);
    if (auto v = n["cpus"])
      if (auto i = integer(v, key + ".cpus", 0, 1024))
        out.cpus = static_cast<int32_t>(*i);
    if (auto v = n["memory"])
      if (auto b = size_value(v, key + ".memory"))
        out.memory_bytes = *b;
    if (auto v = n["gpus"])
      if (auto i = integer(v, key + ".gpus", 0, 64))
        out.gpus = static_cast<int32_t>(*i);
    if (auto v = n["gpu_memory"])
      if (auto b = size_value(v, key + ".gpu_memory"))
        out.gpu_memory_bytes = *b;
    if (n["gpus"] && n["gpu_memory"])
      fail(n["gpu_memory"], key + ".gpu_memory",
           "give gpus (whole GPUs) or gpu_memory (a share of one GPU), not both");
  }

  void http(const YAML::Node& n, const std::string& key, http_request& out,
            std::optional<caf::timespan>& timeout) {
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping with url (and method, headers, body, timeout)");
      return;
    }
    check_keys(n, http_keys, key);
    if (auto v = n["url"]; !v) {
      fail(n, key + ".url", "missing");
    } else if (auto u = scalar(v, key + ".url")) {
      if (!is_http_url(*u))
        fail(v, key + ".url", "'" + printable(*u) + "' is not an http:// or https:// URL");
      out.url = *u;
    }
    if (auto v = n["method"])
      if (auto m = scalar(v, key + ".method")) {
        if (methods.count(*m) == 0)
          fail(v, key + ".method", "'" + printable(*m) + "' is not one of " + join(methods));
        out.method = *m;
      }
    if (auto v = n["headers"]) {
      std::map<std::string, std::string> headers;
      if (!v.IsMap()) {
        fail(v, key + ".headers", "must be a mapping of Name: value");
      } else {
        for (auto it = v.begin(); it != v.end(); ++it) {
          auto name = it->first.IsScalar() ? it->first.Scalar() : std::string();
          if (auto val = scalar(it->second, key + ".headers." + printable(name)))
            headers[name] = *val;
        }
      }
      out.headers = std::move(headers);
    }
    if (auto v = n["body"])
      if (auto b = scalar(v, key + ".body"))
        out.body = *b;
    if (auto v = n["timeout"])
      timeout = duration(v, key + ".timeout");
  }

  void expect(const YAML::Node& n, const std::string& key, std::vector<int32_t>& out) {
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping with status: [codes]");
      return;
    }
    check_keys(n, {"status"}, key);
    auto st = n["status"];
    if (!st)
      return;
    if (st.IsScalar()) {
      if (auto i = integer(st, key + ".status", 100, 599))
        out.push_back(*i);
      return;
    }
    if (!st.IsSequence()) {
      fail(st, key + ".status", "must be a list of HTTP status codes");
      return;
    }
    for (size_t k = 0; k < st.size(); ++k)
      if (auto i = integer(st[k], key + ".status[" + std::to_string(k) + "]", 100, 599))
        out.push_back(*i);
  }

  void env(const YAML::Node& n, const std::string& key,
           std::map<std::string, std::string>& out) {
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping of NAME: value");
      return;
    }
    if (!spend(n, n.size()))
      return;
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      auto name = it->first.IsScalar() ? it->first.Scalar() : std::string();
      auto path = key + "." + printable(name);
      if (!is_variable_name(name)) {
        fail(it->first, key, "'" + printable(name) + "' is not a valid variable name");
        continue;
      }
      if (!seen.insert(name).second) {
        fail(it->first, path, "duplicate key");
        continue;
      }
      if (it->second.IsNull()) {
        out[name] = "";
      } else if (auto v = scalar(it->second, path)) {
        out[name] = *v;
      }
    }
  }

  std::string file_;
  std::vector<std::string> problems_;
  size_t values_ = 0;
  bool over_budget_ = false;
};

} // namespace

std::vector<std::string> stage_def::argv(const std::string& pipeline_dir) const {
  if (is_http || is_noop)
    return {};
  if (!shell.empty())
    return {"/bin/sh", "-c", shell};
  auto result = run;
  auto& prog = result.at(0);
  if (prog[0] != '/' && prog.find('/') != std::string::npos)
    prog = pipeline_dir + "/" + prog;
  return result;
}

std::string stage_def::command() const {
  if (is_noop)
    return "noop";
  if (is_http)
    return http.method + " " + http.url;
  if (!shell.empty())
    return shell;
  std::string out;
  for (auto& a : run) {
    bool quote = a.empty() || a.find_first_of(" \t'\"$\\") != std::string::npos;
    out += (out.empty() ? "" : " ") + (quote ? "'" + a + "'" : a);
  }
  return out;
}

namespace {
caf::expected<pipeline_def> check_pipeline(const YAML::Node& root, pipeline_def def,
                                           const std::string& file);
} // namespace

std::string sha256_hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

caf::expected<pipeline_def> parse_pipeline(const std::string& text, const std::string& file) {
  pipeline_def def;
  def.sha256 = sha256_hex(text);
  def.file = std::filesystem::absolute(file).lexically_normal().string();
  def.dir = std::filesystem::path(def.file).parent_path().string();
  if (text.size() > max_file_bytes)
    return caf::make_error(errc::bad_input, file + ": the file is " + std::to_string(text.size())
                                              + " bytes; pipeline files may have at most "
                                              + std::to_string(max_file_bytes));
  if (auto nest = measure_nesting(text, max_nesting); nest.line > 0)
    return caf::make_error(errc::bad_input, file + ":" + std::to_string(nest.line)
                                              + ": nested more than "
                                              + std::to_string(max_nesting)
                                              + " levels deep (lists and mappings)");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return caf::make_error(errc::bad_input, file + ":" + std::to_string(e.mark.line + 1) + ":"
                                              + std::to_string(e.mark.column + 1)
                                              + ": YAML syntax error: " + printable(e.msg));
  }
  try {
    return check_pipeline(root, std::move(def), file);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on shapes no check above foresaw; still the user's file.
    return caf::make_error(errc::bad_input, file + ":" + std::to_string(e.mark.line + 1) + ":"
                                              + std::to_string(e.mark.column + 1)
                                              + ": cannot read: " + printable(e.msg));
  }
}

namespace {

// depends_on resolved and checked: unknown names, a stage naming itself or
// twice, and cycles (each cycle once, named stage by stage). A name may be a
// matrix stage as written (`train`): it stands for all its instances.
// `implicit[i]`: the stage written before stage i's (its dependency when it
// has no depends_on), "" for the first.
void check_graph(checker& c, pipeline_def& def, const std::vector<YAML::Node>& dep_nodes,
                 const std::vector<std::string>& implicit) {
  std::map<std::string, size_t> index;
  std::map<std::string, std::vector<std::string>> groups;  // as written -> instances
  for (size_t i = 0; i < def.stages.size(); ++i) {
    index.emplace(def.stages[i].name, i);
    groups[def.stages[i].base_name].push_back(def.stages[i].name);
  }
  auto where = [&](size_t i) {
    return "stages[" + std::to_string(i) + "] (" + printable(def.stages[i].name) + ").depends_on";
  };
  std::vector<std::vector<size_t>> edges(def.stages.size());
  for (size_t i = 0; i < def.stages.size(); ++i) {
    auto& s = def.stages[i];
    const auto& node = dep_nodes[i];
    std::vector<std::string> written = node ? s.depends_on : std::vector<std::string>{};
    if (!node && !implicit[i].empty())
      written.push_back(implicit[i]);  // the running order: the stage before
    std::vector<std::string> resolved;
    std::set<std::string> seen;
    for (size_t k = 0; k < written.size(); ++k) {
      const auto& d = written[k];
      auto at = node ? node[k] : YAML::Node();
      auto key = where(i) + "[" + std::to_string(k) + "]";
      if (d == s.name || d == s.base_name) {
        c.fail(at, key, "a stage cannot depend on itself");
        continue;
      }
      if (!seen.insert(d).second) {
        c.fail(at, key, "'" + printable(d) + "' is named twice");
        continue;
      }
      std::vector<std::string> names;
      if (auto g = groups.find(d); g != groups.end())
        names = g->second;
      else if (index.count(d) > 0)
        names = {d};
      if (names.empty()) {
        std::string all;
        for (auto& [base, inst] : groups)
          if (base != s.base_name)
            all += (all.empty() ? "" : ", ") + base;
        c.fail(at, key, "no stage named '" + printable(d) + "' (stages: " + all + ")");
        continue;
      }
      for (auto& n : names) {
        resolved.push_back(n);
        edges[i].push_back(index.at(n));
      }
    }
    s.depends_on = std::move(resolved);
  }
  // (Cycles among the names that are known are reported with the rest.)
  // Depth-first: 0 unseen, 1 on the path, 2 done.
  std::vector<int> mark(def.stages.size(), 0);
  std::vector<size_t> path;
  std::function<void(size_t)> visit = [&](size_t i) {
    mark[i] = 1;
    path.push_back(i);
    for (auto d : edges[i]) {
      if (mark[d] == 1) {
        std::string cycle;
        auto from = std::find(path.begin(), path.end(), d);
        for (auto it = from; it != path.end(); ++it)
          cycle += def.stages[*it].name + " -> ";
        cycle += def.stages[d].name;
        c.fail(dep_nodes[i] ? dep_nodes[i] : YAML::Node(), where(i),
               "cycle: " + cycle + " (each stage waits for the one after it)");
      } else if (mark[d] == 0) {
        visit(d);
      }
    }
    path.pop_back();
    mark[i] = 2;
  };
  for (size_t i = 0; i < def.stages.size(); ++i)
    if (mark[i] == 0)
      visit(i);
}

// The run-wide settings: supervision, resume, max_running, artifacts,
// max_parallel, on_failure.
void check_settings(checker& c, const YAML::Node& root, pipeline_def& def) {
  if (auto n = root["supervision"]) {
    if (!n.IsMap()) {
      c.fail(n, "supervision", "must be a mapping with max_retries, within");
    } else {
      c.check_keys(n, supervision_keys, "supervision");
      if (auto v = n["max_retries"])
        if (auto i = c.integer(v, "supervision.max_retries", 0, 100000))
          def.supervision.max_retries = *i;
      if (auto v = n["within"])
        if (auto d = c.duration(v, "supervision.within"))
          def.supervision.within = *d;
    }
  }
  if (auto n = root["resume"])
    if (auto b = c.boolean(n, "resume"))
      def.resume = *b;
  if (auto n = root["max_running"])
    if (auto i = c.integer(n, "max_running", 0, 100000))
      def.max_running = *i;
  auto artifacts = root["artifacts"];
  if (artifacts) {
    if (auto a = c.scalar(artifacts, "artifacts")) {
      if (*a != "folder" && *a != "store")
        c.fail(artifacts, "artifacts", "'" + printable(*a) + "' is not folder or store");
      def.artifacts_in_store = *a == "store";
    }
  }

  if (auto n = root["max_parallel"])
    if (auto i = c.integer(n, "max_parallel", 1, 10000))
      def.max_parallel = *i;
  if (auto n = root["on_failure"]) {
    if (auto a = c.scalar(n, "on_failure")) {
      if (*a != "stop" && *a != "continue")
        c.fail(n, "on_failure", "'" + printable(*a) + "' is not stop or continue");
      def.continue_on_failure = *a == "continue";
    }
  }

}

// `params:` NAME: { default, required, description }, in file order.
void check_params(checker& c, const YAML::Node& root, pipeline_def& def) {
  if (auto n = root["params"]) {
    if (!n.IsMap()) {
      c.fail(n, "params", "must be a mapping of NAME: { default, required, description }");
    } else if (c.spend(n, n.size())) {
      std::set<std::string> seen;
      for (auto it = n.begin(); it != n.end(); ++it) {
        auto name = it->first.IsScalar() ? it->first.Scalar() : std::string();
        auto path = "params." + printable(name);
        if (!is_variable_name(name)) {
          c.fail(it->first, "params", "'" + printable(name) + "' is not a valid parameter name "
                                      "(letters, digits and _, not starting with a digit)");
          continue;
        }
        if (!seen.insert(name).second) {
          c.fail(it->first, path, "duplicate key");
          continue;
        }
        param_def pd;
        pd.name = name;
        auto v = it->second;  // (a copy: it-> yields a temporary)
        if (v.IsMap()) {
          c.check_keys(v, param_keys, path);
          if (auto d = v["default"]) {
            if (d.IsNull())
              pd.default_value = "";
            else if (auto text = c.scalar(d, path + ".default"))
              pd.default_value = *text;
          }
          if (auto r = v["required"])
            if (auto b = c.boolean(r, path + ".required"))
              pd.required = *b;
          if (auto d = v["description"]; d && d.IsScalar())
            pd.description = d.Scalar();
          if (pd.required && pd.default_value)
            c.fail(v, path, "has both required: true and a default; give one");
        } else if (!v.IsNull()) {
          c.fail(v, path, "must be a mapping with default, required, description");
        }
        def.params.push_back(std::move(pd));
      }
    }
  }
}

// `api_env: [NAME, ...]`: the variables an API caller may set for this
// pipeline's stages. Never troupe's own (TROUPE_*) nor a loader's or a
// shell's (LD_PRELOAD, PATH, BASH_ENV, ...): those would run code the
// pipeline's author never wrote.
void check_api_env(checker& c, const YAML::Node& root, pipeline_def& def) {
  auto n = root["api_env"];
  if (!n)
    return;
  if (!n.IsSequence()) {
    c.fail(n, "api_env", "must be a list of variable names");
    return;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    auto where = "api_env[" + std::to_string(i) + "]";
    auto name = c.scalar(n[i], where);
    if (!name)
      continue;
    if (!is_variable_name(*name))
      c.fail(n[i], where, "'" + printable(*name) + "' is not a valid variable name");
    else if (is_troupe_secret(*name))
      c.fail(n[i], where, "'" + *name + "': TROUPE_* and PGPASS* are troupe's own; no stage "
                                        "receives them");
    else if (is_loader_or_shell(*name))
      c.fail(n[i], where, "'" + *name + "' changes what code a stage loads or how its shell "
                                        "starts; an API caller may never set it");
    else if (!def.api_env.insert(*name).second)
      c.fail(n[i], where, "'" + *name + "' is listed twice");
  }
}

caf::expected<pipeline_def> check_pipeline(const YAML::Node& root, pipeline_def def,
                                           const std::string& file) {
  checker c{file};
  if (!root.IsMap())
    return caf::make_error(errc::bad_input,
                           file + ": must be a mapping with name and stages");
  c.check_keys(root, top_keys, "");

  if (auto n = root["name"]; !n)
    c.fail(root, "name", "missing (every pipeline has a name)");
  else if (auto s = c.scalar(n, "name"))
    def.name = *s;
  if (auto n = root["description"]; n && n.IsScalar())
    def.description = n.Scalar();

  caf::timespan default_timeout = builtin_timeout;
  auto& default_env = def.default_env;
  std::string default_cwd = def.dir;
  retry_spec default_retry;
  default_retry.on = default_retry_on();
  int64_t default_memory = 0;
  // (A cwd that starts with a template is resolved when the run fills it in.)
  auto resolve_dir = [&](const std::string& p) {
    return (!p.empty() && p[0] == '/') || p.rfind("${", 0) == 0 ? p : def.dir + "/" + p;
  };
  if (auto d = root["defaults"]) {
    if (!d.IsMap()) {
      c.fail(d, "defaults", "must be a mapping");
    } else {
      c.check_keys(d, default_keys, "defaults");
      if (auto n = d["timeout"])
        if (auto t = c.duration(n, "defaults.timeout"))
          default_timeout = *t;
      if (auto n = d["env"])
        c.env(n, "defaults.env", default_env);
      if (auto n = d["cwd"])
        if (auto s = c.scalar(n, "defaults.cwd"))
          default_cwd = resolve_dir(*s);
      if (auto n = d["retry"])
        c.retry(n, "defaults.retry", default_retry);
      if (auto n = d["limits"])
        c.limits(n, "defaults.limits", default_memory);
    }
  }
  check_settings(c, root, def);
  check_params(c, root, def);
  check_api_env(c, root, def);
  // ${...} in a field: each reference must name something the run will have.
  auto check_refs = [&](const YAML::Node& at, const std::string& key, const std::string& text,
                        const std::vector<std::pair<std::string, std::vector<std::string>>>* axes) {
    std::string problem;
    auto refs = template_refs(text, &problem);
    if (!problem.empty())
      c.fail(at, key, problem);
    for (auto& r : refs) {
      std::string why;
      if (r.space == "params") {
        bool declared = false;
        std::string names;
        for (auto& p : def.params) {
          declared = declared || p.name == r.name;
          names += (names.empty() ? "" : ", ") + p.name;
        }
        if (!declared)
          why = "no parameter named '" + printable(r.name) + "' (params: "
                + (names.empty() ? std::string("none declared") : names) + ")";
      } else if (r.space == "matrix") {
        std::string names;
        bool found = false;
        if (axes)
          for (auto& [k, vals] : *axes) {
            found = found || k == r.name;
            names += (names.empty() ? "" : ", ") + k;
          }
        if (!found)
          why = names.empty() ? std::string("this stage has no matrix")
                              : "no matrix key '" + printable(r.name) + "' (matrix: " + names + ")";
      } else if (r.space == "run") {
        if (r.name != "id" && r.name != "dir")
          why = "unknown; run.id and run.dir exist";
      } else if (r.space == "stage") {
        if (r.name != "name")
          why = "unknown; stage.name exists";
      } else if (r.space == "env") {
        if (!is_variable_name(r.name))
          why = "'" + printable(r.name) + "' is not a valid variable name";
        else if (is_troupe_secret(r.name))
          why = "troupe's own variables (TROUPE_*, PGPASSWORD, PGPASSFILE) never reach a stage";
        else
          def.env_refs.insert(r.name);
      }
      if (!why.empty())
        c.fail(at, key, "'" + printable(r.text()) + "': " + why);
    }
  };
  // A stage's or a probe's name: checked, and unique among its kind.
  auto read_name = [&](const YAML::Node& n, const std::string& where,
                       std::map<std::string, int>& seen, int line, const char* kind) {
    std::string out;
    if (auto v = n["name"]; !v) {
      c.fail(n, where + ".name", "missing");
    } else if (auto name = c.scalar(v, where + ".name")) {
      out = *name;
      if (!is_stage_name(out))
        c.fail(v, where + ".name",
               "'" + printable(out) + "' must be 1-64 of A-Z a-z 0-9 . _ - and start "
               "with a letter or digit (it names the log files)");
      else if (auto [it, fresh] = seen.emplace(out, line); !fresh)
        c.fail(v, where + ".name", std::string("duplicate ") + kind + " name (first at line "
                                     + std::to_string(it->second) + ")");
    }
    return out;
  };
  // `run: [argv]` or `shell: "line"` (the caller checked there is one).
  auto read_command = [&](const YAML::Node& run, const YAML::Node& shell, const std::string& where,
                          stage_def& out) {
    if (run) {
      if (!run.IsSequence() || run.size() == 0) {
        c.fail(run, where + ".run", "must be a non-empty list (argv, no shell): [program, arg, ...]");
      } else if (c.spend(run, run.size())) {
        for (size_t k = 0; k < run.size(); ++k)
          if (auto a = c.scalar(run[k], where + ".run[" + std::to_string(k) + "]"))
            out.run.push_back(*a);
        if (!out.run.empty() && out.run[0].empty())
          c.fail(run[0], where + ".run[0]", "the program must not be empty");
      }
    } else if (auto sh = c.scalar(shell, where + ".shell")) {
      if (sh->find_first_not_of(" \t\n") == std::string::npos)
        c.fail(shell, where + ".shell", "must not be empty");
      out.shell = *sh;
    }
  };
  for (auto& [k, v] : def.default_env)
    check_refs(root["defaults"]["env"], "defaults.env." + k, v, nullptr);

  auto stages = root["stages"];
  std::vector<YAML::Node> dep_nodes;  // each stage's depends_on, or a null node
  std::vector<std::string> implicit;  // each stage's predecessor as written, "" for the first
  std::string previous;
  size_t instances = 0;
  if (!stages) {
    c.fail(root, "stages", "missing (a list of stages)");
  } else if (!stages.IsSequence() || stages.size() == 0) {
    c.fail(stages, "stages", "must be a non-empty list of stages");
  } else if (stages.size() > max_stages) {
    c.fail(stages, "stages", std::to_string(stages.size()) + " stages; at most "
                               + std::to_string(max_stages) + " are accepted");
  } else {
    std::map<std::string, int> names;
    for (size_t i = 0; i < stages.size(); ++i) {
      auto n = stages[i];
      std::string where = "stages[" + std::to_string(i) + "]";
      if (!n.IsMap()) {
        c.fail(n, where, "must be a mapping with name and run or shell");
        continue;
      }
      stage_def s;
      s.line = n.Mark().line + 1;
      s.timeout = default_timeout;
      s.cwd = default_cwd;
      s.retry = default_retry;
      s.memory_limit = default_memory;
      if (auto v = n["name"]; v && v.IsScalar())
        where += " (" + printable(v.Scalar()) + ")";
      c.check_keys(n, stage_keys, where);
      s.name = read_name(n, where, names, s.line, "stage");
      if (auto v = n["description"]; v && v.IsScalar())
        s.description = v.Scalar();
      auto run = n["run"];
      auto shell = n["shell"];
      auto http = n["http"];
      auto noop = n["noop"];
      int kinds = (run ? 1 : 0) + (shell ? 1 : 0) + (http ? 1 : 0) + (noop ? 1 : 0);
      std::optional<caf::timespan> http_timeout;
      if (kinds > 1) {
        c.fail(n, where, "has more than one of run, shell, http, noop; give exactly one");
      } else if (kinds == 0) {
        c.fail(n, where, "has none of run, shell, http, noop; give exactly one");
      } else if (noop) {
        if (auto b = c.boolean(noop, where + ".noop")) {
          if (!*b)
            c.fail(noop, where + ".noop", "must be true (a stage that does nothing)");
          s.is_noop = true;
          s.strategy = "noop";
        }
      } else if (http) {
        s.is_http = true;
        s.strategy = "auto";
        c.http(http, where + ".http", s.http, http_timeout);
      } else {
        read_command(run, shell, where, s);
      }
      if (auto v = n["optional"])
        if (auto b = c.boolean(v, where + ".optional"))
          s.optional = *b;
      if (auto v = n["timeout"])
        if (auto t = c.duration(v, where + ".timeout"))
          s.timeout = *t;
      if (auto v = n["cwd"])
        if (auto p = c.scalar(v, where + ".cwd"))
          s.cwd = resolve_dir(*p);
      if (auto v = n["env"])
        c.env(v, where + ".env", s.env);
      if (http_timeout && !n["timeout"])
        s.timeout = *http_timeout;
      if (auto v = n["strategy"]) {
        if (!s.is_http) {
          c.fail(v, where + ".strategy", "only http stages have a strategy");
        } else if (auto st = c.scalar(v, where + ".strategy")) {
          if (*st != "auto" && *st != "http" && *st != "browser")
            c.fail(v, where + ".strategy", "'" + *st + "' is not one of auto, http, browser");
          s.strategy = *st;
        }
      }
      if (auto v = n["expect"]) {
        if (!s.is_http)
          c.fail(v, where + ".expect", "only http stages have expect");
        else
          c.expect(v, where + ".expect", s.http.expect_status);
      }
      if (auto v = n["retry"])
        c.retry(v, where + ".retry", s.retry);
      if (auto v = n["limits"])
        c.limits(v, where + ".limits", s.memory_limit);
      if (auto v = n["resources"])
        c.resources(v, where + ".resources", s.resources);
      if (auto v = n["gpu_fallback"]) {
        if (auto f = c.scalar(v, where + ".gpu_fallback")) {
          if (*f != "fail" && *f != "cpu" && *f != "wait")
            c.fail(v, where + ".gpu_fallback", "'" + printable(*f)
                                                 + "' is not one of fail, cpu, wait");
          else if (s.resources.gpus == 0 && s.resources.gpu_memory_bytes == 0)
            c.fail(v, where + ".gpu_fallback",
                   "applies only to a stage with resources.gpus or resources.gpu_memory");
          else
            s.gpu_fallback = *f;
        }
      }
      auto deps = n["depends_on"];
      if (deps && !deps.IsSequence()) {
        c.fail(deps, where + ".depends_on", "must be a list of stage names ([] for none)");
        deps = YAML::Node();
      } else if (deps && c.spend(deps, deps.size())) {
        for (size_t k = 0; k < deps.size(); ++k)
          if (auto d = c.scalar(deps[k], where + ".depends_on[" + std::to_string(k) + "]"))
            s.depends_on.push_back(*d);
      }
      // matrix: NAME: [values], one stage per combination.
      std::vector<std::pair<std::string, std::vector<std::string>>> axes;
      if (auto m = n["matrix"]) {
        if (!m.IsMap() || m.size() == 0) {
          c.fail(m, where + ".matrix", "must be a mapping of NAME: [values]");
        } else if (c.spend(m, m.size())) {
          size_t product = 1;
          std::set<std::string> seen;
          for (auto it = m.begin(); it != m.end(); ++it) {
            auto key = it->first.IsScalar() ? it->first.Scalar() : std::string();
            auto path = where + ".matrix." + printable(key);
            if (!is_variable_name(key)) {
              c.fail(it->first, where + ".matrix", "'" + printable(key) + "' is not a valid name "
                                                   "(letters, digits and _; it becomes TROUPE_MATRIX_"
                                                   "<NAME>)");
              continue;
            }
            if (!seen.insert(key).second) {
              c.fail(it->first, path, "duplicate key");
              continue;
            }
            auto vals = it->second;  // (a copy: it-> yields a temporary)
            if (!vals.IsSequence() || vals.size() == 0) {
              c.fail(vals, path, "must be a non-empty list of values");
              continue;
            }
            if (!c.spend(vals, vals.size()))
              continue;
            std::vector<std::string> list;
            std::set<std::string> distinct;
            for (size_t k = 0; k < vals.size(); ++k) {
              auto v = c.scalar(vals[k], path + "[" + std::to_string(k) + "]");
              if (!v)
                continue;
              if (!distinct.insert(*v).second)
                c.fail(vals[k], path + "[" + std::to_string(k) + "]",
                       "'" + printable(*v) + "' is listed twice");
              list.push_back(*v);
            }
            product = std::min<size_t>(product * list.size(), max_matrix_instances + 1);
            axes.emplace_back(key, std::move(list));
          }
          if (product > max_matrix_instances)
            c.fail(m, where + ".matrix",
                   "more than " + std::to_string(max_matrix_instances)
                     + " combinations; at most that many instances of one stage");
        }
      }
      for (size_t k = 0; k < s.run.size(); ++k)
        check_refs(run[k], where + ".run[" + std::to_string(k) + "]", s.run[k], &axes);
      if (!s.shell.empty())
        check_refs(shell, where + ".shell", s.shell, &axes);
      for (auto& [k, v] : s.env)
        check_refs(n["env"], where + ".env." + k, v, &axes);
      if (auto v = n["cwd"])
        check_refs(v, where + ".cwd", s.cwd, &axes);
      if (s.is_http) {
        check_refs(http, where + ".http.url", s.http.url, &axes);
        check_refs(http, where + ".http.body", s.http.body, &axes);
        for (auto& [k, v] : s.http.headers)
          check_refs(http, where + ".http.headers." + k, v, &axes);
      }
      s.base_name = s.name;
      auto written_name = s.name;
      std::vector<stage_def> expanded;
      if (axes.empty() || instances + 1 > max_stages) {
        expanded.push_back(std::move(s));
      } else {
        // Every combination, the first key varying slowest.
        std::vector<size_t> at(axes.size(), 0);
        for (bool more = true; more;) {
          auto inst = s;
          std::string suffix;
          for (size_t a = 0; a < axes.size(); ++a) {
            inst.matrix.emplace_back(axes[a].first, axes[a].second[at[a]]);
            suffix += (a == 0 ? "" : ",") + axes[a].first + "=" + axes[a].second[at[a]];
          }
          inst.name = s.name + "[" + suffix + "]";
          expanded.push_back(std::move(inst));
          more = false;
          for (size_t a = axes.size(); a-- > 0;) {
            if (++at[a] < axes[a].second.size()) {
              more = true;
              break;
            }
            at[a] = 0;
          }
          if (expanded.size() > max_matrix_instances)
            break;
        }
      }
      for (auto& inst : expanded) {
        if (inst.name != inst.base_name) {
          if (inst.name.size() > 200) {
            c.fail(n["matrix"], where + ".matrix", "the instance name '" + printable(inst.name)
                                                     + "' is longer than 200 characters");
            break;
          }
          if (auto [it, fresh] = names.emplace(inst.name, s.line); !fresh) {
            c.fail(n["matrix"], where + ".matrix",
                   "the instance '" + printable(inst.name) + "' is also the stage at line "
                     + std::to_string(it->second));
            break;
          }
        }
        ++instances;
        dep_nodes.push_back(deps);
        implicit.push_back(previous);
        def.stages.push_back(std::move(inst));
      }
      if (instances > max_stages)
        c.fail(n, where, std::to_string(instances) + " stages with matrix instances; at most "
                           + std::to_string(max_stages) + " are accepted");
      previous = written_name;
    }
  }
  if (auto n = root["probes"]) {
    if (!n.IsSequence() || n.size() == 0) {
      c.fail(n, "probes", "must be a non-empty list of probes (name, and run or shell)");
    } else if (n.size() > 32) {
      c.fail(n, "probes", std::to_string(n.size()) + " probes; at most 32 are accepted");
    } else {
      std::map<std::string, int> seen;
      for (size_t i = 0; i < n.size(); ++i) {
        auto pn = n[i];
        std::string where = "probes[" + std::to_string(i) + "]";
        if (!pn.IsMap()) {
          c.fail(pn, where, "must be a mapping with name and run or shell");
          continue;
        }
        stage_def pr;
        pr.line = pn.Mark().line + 1;
        pr.timeout = default_probe_timeout;
        pr.cwd = default_cwd;
        if (auto v = pn["name"]; v && v.IsScalar())
          where += " (" + printable(v.Scalar()) + ")";
        c.check_keys(pn, probe_keys, where);
        pr.name = read_name(pn, where, seen, pr.line, "probe");
        auto run = pn["run"];
        auto shell = pn["shell"];
        if ((run ? 1 : 0) + (shell ? 1 : 0) != 1)
          c.fail(pn, where, "give exactly one of run and shell");
        else
          read_command(run, shell, where, pr);
        if (auto v = pn["timeout"])
          if (auto t = c.duration(v, where + ".timeout"))
            pr.timeout = *t;
        if (auto v = pn["cwd"])
          if (auto d = c.scalar(v, where + ".cwd"))
            pr.cwd = resolve_dir(*d);
        if (auto v = pn["env"])
          c.env(v, where + ".env", pr.env);
        for (size_t k = 0; k < pr.run.size(); ++k)
          check_refs(run[k], where + ".run[" + std::to_string(k) + "]", pr.run[k], nullptr);
        if (!pr.shell.empty())
          check_refs(shell, where + ".shell", pr.shell, nullptr);
        for (auto& [k, v] : pr.env)
          check_refs(pn["env"], where + ".env." + k, v, nullptr);
        pr.base_name = pr.name;
        def.probes.push_back(std::move(pr));
      }
      if (def.artifacts_in_store)
        c.fail(n, "probes", "probes keep their logs in the run folder; artifacts: store has none");
    }
  }
  // Log files are named after stages: two names may not make one file name.
  std::map<std::string, std::string> stems;
  for (auto& st : def.stages)
    if (auto [it, fresh] = stems.emplace(log_stem(st.name), st.name); !fresh && c.ok())
      c.fail(stages, "stages", "'" + printable(st.name) + "' and '" + printable(it->second)
                                 + "' would share the log files logs/" + it->first + ".*");
  if (dep_nodes.size() == def.stages.size())
    check_graph(c, def, dep_nodes, implicit);
  // Without a folder there is nowhere for a process's logs: for now such a
  // pipeline holds noop stages only.
  if (def.artifacts_in_store)
    for (size_t i = 0; i < def.stages.size(); ++i)
      if (!def.stages[i].is_noop)
        c.fail(root["artifacts"], "artifacts",
               "store keeps no run folder, so every stage must be noop for now (stages["
                 + std::to_string(i) + "] (" + def.stages[i].name + ") is not)");
  if (!c.ok())
    return caf::make_error(errc::bad_input, c.text());
  return def;
}

} // namespace

caf::expected<std::map<std::string, std::string>>
resolve_params(const pipeline_def& p, const std::map<std::string, std::string>& given,
               const std::map<std::string, std::string>& environment, param_wording wording) {
  bool api = wording == param_wording::api;
  auto source = api ? "pipeline '" + p.name + "'" : p.file;
  std::vector<std::string> problems;
  std::map<std::string, std::string> values;
  std::string declared;
  for (auto& d : p.params)
    declared += (declared.empty() ? "" : ", ") + d.name;
  for (auto& [name, value] : given) {
    bool known = false;
    for (auto& d : p.params)
      known = known || d.name == name;
    if (!known)
      problems.push_back((api ? "" : "--param ") + printable(name) + ": " + source
                         + " declares no such parameter (params: "
                         + (declared.empty() ? "none" : declared) + ")");
    else
      values[name] = value;
  }
  for (auto& d : p.params) {
    if (values.count(d.name) > 0)
      continue;
    if (d.default_value)
      values[d.name] = *d.default_value;
    else if (d.required)
      problems.push_back("parameter '" + d.name + "' is required by " + source
                         + (api ? " (give params." + d.name + ")"
                                : " (give --param " + d.name + "=VALUE)")
                         + (d.description.empty() ? "" : ": " + d.description));
    else
      values[d.name] = "";
  }
  for (auto& name : p.env_refs)
    if (environment.count(name) == 0)
      problems.push_back("${env." + name + "} is used by " + source
                         + " but " + name + " is not set in troupe's environment");
  if (!problems.empty()) {
    std::string text;
    for (auto& line : problems)
      text += (text.empty() ? "" : "\n") + line;
    return caf::make_error(errc::bad_input, text);
  }
  return values;
}

std::vector<std::vector<size_t>> stage_waves(const pipeline_def& p) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < p.stages.size(); ++i)
    index.emplace(p.stages[i].name, i);
  std::vector<int> wave(p.stages.size(), -1);
  std::vector<std::vector<size_t>> waves;
  // A validated pipeline has no cycle: every pass places at least one stage.
  for (size_t placed = 0, pass = 0; placed < p.stages.size() && pass <= p.stages.size(); ++pass) {
    for (size_t i = 0; i < p.stages.size(); ++i) {
      if (wave[i] >= 0)
        continue;
      bool ready = true;
      for (auto& d : p.stages[i].depends_on) {
        auto it = index.find(d);
        if (it == index.end())
          continue;
        if (wave[it->second] < 0 || wave[it->second] >= static_cast<int>(pass)) {
          ready = false;
          break;
        }
      }
      if (!ready)
        continue;
      wave[i] = static_cast<int>(pass);
      ++placed;
    }
  }
  for (size_t i = 0; i < p.stages.size(); ++i) {
    auto w = static_cast<size_t>(std::max(wave[i], 0));
    if (waves.size() <= w)
      waves.resize(w + 1);
    waves[w].push_back(i);
  }
  return waves;
}

caf::expected<pipeline_def> load_pipeline(const std::string& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st))
    return caf::make_error(errc::bad_input, path + ": no such pipeline file");
  if (std::filesystem::is_directory(st))
    return caf::make_error(errc::bad_input, path + ": is a directory, not a pipeline file");
  if (!std::filesystem::is_regular_file(st))
    return caf::make_error(errc::bad_input, path + ": not a regular file");
  auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > max_file_bytes)
    return caf::make_error(errc::bad_input, path + ": the file is " + std::to_string(size)
                                              + " bytes; pipeline files may have at most "
                                              + std::to_string(max_file_bytes));
  std::ifstream in(path);
  if (!in)
    return caf::make_error(errc::bad_input, path + ": cannot read pipeline file: "
                                              + std::strerror(errno));
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_pipeline(buf.str(), path);
}

} // namespace troupe
