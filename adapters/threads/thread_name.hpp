// Names the calling thread (at most 15 characters: the kernel's limit), so
// that `ps -L`, `top -H` and /proc/PID/task/*/comm tell troupe's threads
// apart (docs/coordinator.md lists them).
#pragma once

#include <pthread.h>

namespace troupe {

inline void name_this_thread(const char* name) {
  ::pthread_setname_np(::pthread_self(), name);
}

} // namespace troupe
