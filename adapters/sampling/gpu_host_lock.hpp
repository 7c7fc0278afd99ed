// One GPU broker per GPU on a host: each broker takes an advisory lock
// (flock) on a file per GPU UUID, held for its lifetime and dropped by the
// kernel when its process ends, however it ends. A second broker on the
// same host (a `troupe run` beside a coordinator, two `troupe gpu serve`)
// cannot take a GPU the first holds, so the two never grant the same GPU.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace troupe {

/// $TROUPE_GPU_LOCK_DIR, else /run/lock where it is writable, else /tmp.
std::string default_gpu_lock_dir();

class gpu_host_locks {
public:
  explicit gpu_host_locks(std::string dir);
  ~gpu_host_locks();
  gpu_host_locks(const gpu_host_locks&) = delete;
  gpu_host_locks& operator=(const gpu_host_locks&) = delete;

  /// Locks what it can of `uuids` (never waits), writing `who` into each
  /// file it locks. Answers, for each GPU it could not lock, who holds it
  /// ("process 4242 (troupe coordinator)") or why it could not try.
  std::map<std::string, std::string> take(const std::vector<std::string>& uuids,
                                          const std::string& who);

  /// The file that stands for `uuid` (its name made safe for a path).
  std::string path_of(const std::string& uuid) const;

private:
  std::string dir_;
  std::vector<int> fds_;
};

} // namespace troupe
