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

const std::set<std::string> top_keys{"name", "description", "defaults", "stages"};
const std::set<std::string> default_keys{"timeout", "env", "cwd"};
const std::set<std::string> stage_keys{"name", "description", "run", "shell",
                                       "optional", "timeout", "cwd", "env"};

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
  if (!shell.empty())
    return {"/bin/sh", "-c", shell};
  auto result = run;
  auto& prog = result.at(0);
  if (prog[0] != '/' && prog.find('/') != std::string::npos)
    prog = pipeline_dir + "/" + prog;
  return result;
}

std::string stage_def::command() const {
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
    }
  }

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
      if (run && shell) {
        c.fail(n, where, "has both run and shell; give exactly one");
      } else if (!run && !shell) {
        c.fail(n, where, "has neither run nor shell; give exactly one");
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
