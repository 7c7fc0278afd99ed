#include "runtime/host_env.hpp"

#include <unistd.h>

#include <cstdlib>

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
