#include "runtime/pipeline.hpp"

#include "messages/errors.hpp"
#include "runtime/duration.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace troupe {

namespace {

const std::set<std::string> top_keys{"name",   "description", "defaults",
                                     "stages", "supervision", "resume"};
const std::set<std::string> default_keys{"timeout", "env", "cwd", "retry", "limits"};
const std::set<std::string> stage_keys{"name",   "description", "run",    "shell",
                                       "http",   "strategy",    "expect", "optional",
                                       "timeout", "cwd",        "env",    "retry",
                                       "limits"};
const std::set<std::string> retry_keys{"max_attempts", "backoff", "on"};
const std::set<std::string> backoff_keys{"initial", "factor", "max", "jitter"};
const std::set<std::string> supervision_keys{"max_retries", "within"};
const std::set<std::string> http_keys{"url", "method", "headers", "body", "timeout"};
const std::set<std::string> limits_keys{"memory"};
const std::set<std::string> methods{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};

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
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      auto key = it->first.IsScalar() ? it->first.Scalar() : std::string("?");
      auto path = where.empty() ? key : where + "." + key;
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
    return n.Scalar();
  }

  std::optional<caf::timespan> duration(const YAML::Node& n, const std::string& key) {
    auto s = scalar(n, key);
    if (!s)
      return std::nullopt;
    auto d = parse_duration(*s);
    if (!d) {
      fail(n, key, "'" + *s + "' is not a duration (use 500ms, 30s, 10m, 1h or seconds)");
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
    fail(n, key, "'" + *s + "' is not true or false");
    return std::nullopt;
  }

  std::optional<double> number(const YAML::Node& n, const std::string& key, double lo,
                               double hi) {
    auto s = scalar(n, key);
    if (!s)
      return std::nullopt;
    char* end = nullptr;
    double v = std::strtod(s->c_str(), &end);
    if (s->empty() || *end != '\0') {
      fail(n, key, "'" + *s + "' is not a number");
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      std::ostringstream os;
      os << "must be between " << lo << " and " << hi << ", not " << *s;
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
    static const std::regex int_re("^-?[0-9]{1,9}$");
    if (!std::regex_match(*s, int_re)) {
      fail(n, key, "'" + *s + "' is not a whole number");
      return std::nullopt;
    }
    auto v = std::stoi(*s);
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
          fail(on[k], item, "'" + *s + "' is not a failure code that can be retried (one of: "
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
      if (!b || *b <= 0)
        fail(v, key + ".memory", "'" + *s + "' is not a positive size (e.g. 512M, 2G)");
      else
        memory = *b;
    }
  }

  void http(const YAML::Node& n, const std::string& key, http_request& out,
            std::optional<caf::timespan>& timeout) {
    static const std::regex url_re(R"(^https?://[^\s/?#]+([/?#]\S*)?$)", std::regex::icase);
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping with url (and method, headers, body, timeout)");
      return;
    }
    check_keys(n, http_keys, key);
    if (auto v = n["url"]; !v) {
      fail(n, key + ".url", "missing");
    } else if (auto u = scalar(v, key + ".url")) {
      if (!std::regex_match(*u, url_re))
        fail(v, key + ".url", "'" + *u + "' is not an http:// or https:// URL");
      out.url = *u;
    }
    if (auto v = n["method"])
      if (auto m = scalar(v, key + ".method")) {
        if (methods.count(*m) == 0)
          fail(v, key + ".method", "'" + *m + "' is not one of " + join(methods));
        out.method = *m;
      }
    if (auto v = n["headers"]) {
      std::map<std::string, std::string> headers;
      if (!v.IsMap()) {
        fail(v, key + ".headers", "must be a mapping of Name: value");
      } else {
        for (auto it = v.begin(); it != v.end(); ++it) {
          auto name = it->first.IsScalar() ? it->first.Scalar() : std::string();
          if (auto val = scalar(it->second, key + ".headers." + name))
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
    static const std::regex name_re("^[A-Za-z_][A-Za-z0-9_]*$");
    if (!n.IsMap()) {
      fail(n, key, "must be a mapping of NAME: value");
      return;
    }
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      auto name = it->first.IsScalar() ? it->first.Scalar() : std::string();
      auto path = key + "." + name;
      if (!std::regex_match(name, name_re)) {
        fail(it->first, key, "'" + name + "' is not a valid variable name");
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
};

} // namespace

std::vector<std::string> stage_def::argv(const std::string& pipeline_dir) const {
  if (is_http)
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

caf::expected<pipeline_def> parse_pipeline(const std::string& text, const std::string& file) {
  static const std::regex stage_name_re("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$");
  pipeline_def def;
  def.file = std::filesystem::absolute(file).lexically_normal().string();
  def.dir = std::filesystem::path(def.file).parent_path().string();
  checker c{file};
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return caf::make_error(errc::bad_input, file + ":" + std::to_string(e.mark.line + 1) + ":"
                                              + std::to_string(e.mark.column + 1)
                                              + ": YAML syntax error: " + e.msg);
  }
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
  std::map<std::string, std::string> default_env;
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

  auto stages = root["stages"];
  if (!stages) {
    c.fail(root, "stages", "missing (a list of stages)");
  } else if (!stages.IsSequence() || stages.size() == 0) {
    c.fail(stages, "stages", "must be a non-empty list of stages");
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
      s.env = default_env;
      s.cwd = default_cwd;
      s.retry = default_retry;
      s.memory_limit = default_memory;
      if (auto v = n["name"]; v && v.IsScalar())
        where += " (" + v.Scalar() + ")";
      c.check_keys(n, stage_keys, where);
      if (auto v = n["name"]; !v) {
        c.fail(n, where + ".name", "missing");
      } else if (auto name = c.scalar(v, where + ".name")) {
        s.name = *name;
        if (!std::regex_match(s.name, stage_name_re))
          c.fail(v, where + ".name",
                 "'" + s.name + "' must be 1-64 of A-Z a-z 0-9 . _ - and start "
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
      int kinds = (run ? 1 : 0) + (shell ? 1 : 0) + (http ? 1 : 0);
      std::optional<caf::timespan> http_timeout;
      if (kinds > 1) {
        c.fail(n, where, "has more than one of run, shell, http; give exactly one");
      } else if (kinds == 0) {
        c.fail(n, where, "has none of run, shell, http; give exactly one");
      } else if (http) {
        s.is_http = true;
        s.strategy = "auto";
        c.http(http, where + ".http", s.http, http_timeout);
      } else if (run) {
        if (!run.IsSequence() || run.size() == 0) {
          c.fail(run, where + ".run",
                 "must be a non-empty list (argv, no shell): [program, arg, ...]");
        } else {
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
  if (!c.ok())
    return caf::make_error(errc::bad_input, c.text());
  return def;
}

caf::expected<pipeline_def> load_pipeline(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return caf::make_error(errc::bad_input, path + ": cannot read pipeline file");
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_pipeline(buf.str(), path);
}

} // namespace troupe
