#include "runtime/host_env.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

extern char** environ;

namespace troupe {

std::map<std::string, std::string> own_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos)
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

namespace {

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

} // namespace

bool is_troupe_secret(const std::string& name) {
  return starts_with(name, "TROUPE_") || name == "PGPASSWORD" || name == "PGPASSFILE";
}

bool is_loader_or_shell(const std::string& name) {
  static const std::set<std::string> names{
    // the shell's own start-up and parsing
    "BASH_ENV", "ENV", "PATH", "IFS", "CDPATH", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
    "GLOBIGNORE", "SHELL", "HOME",
    // glibc's loader and locale machinery
    "GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF",
    "MALLOC_CHECK_", "MALLOC_PERTURB_",
    // interpreters' code paths and start-up hooks
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT", "PERL5LIB", "PERL5OPT",
    "PERLLIB", "RUBYLIB", "RUBYOPT", "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH"};
  return starts_with(name, "LD_") || starts_with(name, "BASH_FUNC_") || names.count(name) > 0;
}

std::vector<std::string> store_url_secrets(const std::string& url) {
  std::vector<std::string> out;
  // postgresql://user:password@host/db
  auto scheme = url.find("://");
  if (scheme != std::string::npos) {
    auto at = url.find('@', scheme + 3);
    auto colon = url.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at && colon + 1 < at)
      out.push_back(url.substr(colon + 1, at - colon - 1));
  }
  // key=value form, or ?password= in a URL's query
  if (auto pos = url.find("password="); pos != std::string::npos) {
    pos += std::strlen("password=");
    auto end = url.find_first_of(" &", pos);
    auto value = url.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (!value.empty())
      out.push_back(value);
  }
  return out;
}

std::map<std::string, std::string>
stage_inheritance(const std::vector<std::string>& secret_values) {
  auto env = own_environment();
  for (auto it = env.begin(); it != env.end();) {
    const auto& value = it->second;
    bool holds = std::any_of(secret_values.begin(), secret_values.end(), [&](const auto& s) {
      // A short secret inside a longer value is more likely chance than a copy.
      return !s.empty() && (value == s || (s.size() >= 8 && value.find(s) != std::string::npos));
    });
    if (is_troupe_secret(it->first) || holds)
      it = env.erase(it);
    else
      ++it;
  }
  return env;
}

std::string find_chromium() {
  if (const char* env = std::getenv("TROUPE_CHROMIUM"))
    return ::access(env, X_OK) == 0 ? std::string(env) : std::string{};
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    size_t start = 0;
    while (start <= dirs.size()) {
      auto end = dirs.find(':', start);
      auto dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
      auto full = (dir.empty() ? "." : dir) + "/" + name;
      if (::access(full.c_str(), X_OK) == 0)
        return full;
      if (end == std::string::npos)
        break;
      start = end + 1;
    }
  }
  return {};
}

} // namespace troupe
