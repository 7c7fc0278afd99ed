#include "messages/job_worker.hpp"

namespace troupe {

void set_env(std::vector<std::string>& env, const std::string& key, const std::string& value) {
  auto prefix = key + "=";
  for (auto& kv : env) {
    if (kv.compare(0, prefix.size(), prefix) == 0) {
      kv = prefix + value;
      return;
    }
  }
  env.push_back(prefix + value);
}

} // namespace troupe
