#include "runtime/pipeline.hpp"

#include "messages/errors.hpp"
#include "runtime/duration.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace troupe {

namespace {

const std::set<std::string> top_keys{"name",   "description", "defaults",   "stages",
                                     "supervision", "resume", "max_running",
                                     "artifacts"};
const std::set<std::string> default_keys{"timeout", "env", "cwd", "retry", "limits"};
const std::set<std::string> stage_keys{"name",   "description", "run",    "shell", "noop",
                                       "http",   "strategy",    "expect", "optional",
                                       "timeout", "cwd",        "env",    "retry",
                                       "limits"};
const std::set<std::string> retry_keys{"max_attempts", "backoff", "on"};
const std::set<std::string> backoff_keys{"initial", "factor", "max", "jitter"};
const std::set<std::string> supervision_keys{"max_retries", "within"};
const std::set<std::string> http_keys{"url", "method", "headers", "body", "timeout"};
const std::set<std::string> limits_keys{"memory"};
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

  void limits(const YAML::Node& n, const std::string& key, int64_t& memory) {
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping with memory");
      return;
    }
    check_keys(n, limits_keys, key);
    if (auto v = n["memory"]) {
      auto s = scalar(v, key + ".memory");
      if (!s)
        return;
      auto b = parse_size(*s);
      if (!b)
        fail(v, key + ".memory", "'" + printable(*s)
                                   + "' is not a size with a unit (e.g. 512Mi, 2Gi, 500MB)");
      else if (*b < (1 << 20))
        fail(v, key + ".memory", "'" + printable(*s) + "' is below 1 MiB; no program runs in that");
      else
        memory = *b;
    }
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

caf::expected<pipeline_def> parse_pipeline(const std::string& text, const std::string& file) {
  pipeline_def def;
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
  auto resolve_dir = [&](const std::string& p) {
    return !p.empty() && p[0] == '/' ? p : def.dir + "/" + p;
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

  auto stages = root["stages"];
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
      if (auto v = n["name"]; !v) {
        c.fail(n, where + ".name", "missing");
      } else if (auto name = c.scalar(v, where + ".name")) {
        s.name = *name;
        if (!is_stage_name(s.name))
          c.fail(v, where + ".name",
                 "'" + printable(s.name) + "' must be 1-64 of A-Z a-z 0-9 . _ - and start "
                 "with a letter or digit (it names the log files)");
        else if (auto [it, fresh] = names.emplace(s.name, s.line); !fresh)
          c.fail(v, where + ".name",
                 "duplicate stage name (first at line " + std::to_string(it->second) + ")");
      }
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
      } else if (run) {
        if (!run.IsSequence() || run.size() == 0) {
          c.fail(run, where + ".run",
                 "must be a non-empty list (argv, no shell): [program, arg, ...]");
        } else if (c.spend(run, run.size())) {
          for (size_t k = 0; k < run.size(); ++k)
            if (auto a = c.scalar(run[k], where + ".run[" + std::to_string(k) + "]"))
              s.run.push_back(*a);
          if (!s.run.empty() && s.run[0].empty())
            c.fail(run[0], where + ".run[0]", "the program must not be empty");
        }
      } else if (auto sh = c.scalar(shell, where + ".shell")) {
        if (sh->find_first_not_of(" \t\n") == std::string::npos)
          c.fail(shell, where + ".shell", "must not be empty");
        s.shell = *sh;
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
      def.stages.push_back(std::move(s));
    }
  }
  // Without a folder there is nowhere for a process's logs: for now such a
  // pipeline holds noop stages only.
  if (def.artifacts_in_store)
    for (size_t i = 0; i < def.stages.size(); ++i)
      if (!def.stages[i].is_noop)
        c.fail(artifacts, "artifacts",
               "store keeps no run folder, so every stage must be noop for now (stages["
                 + std::to_string(i) + "] (" + def.stages[i].name + ") is not)");
  if (!c.ok())
    return caf::make_error(errc::bad_input, c.text());
  return def;
}

} // namespace

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
