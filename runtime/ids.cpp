#include "runtime/ids.hpp"

#include <cstdio>
#include <random>

namespace troupe {

std::string make_run_id(caf::timestamp now) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  auto ms = static_cast<uint64_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  uint64_t a = rng();
  uint64_t b = rng();
  char buf[48];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-7%03llx-%04llx-%012llx",
                static_cast<unsigned long long>((ms >> 16) & 0xffffffffULL),
                static_cast<unsigned long long>(ms & 0xffff),
                static_cast<unsigned long long>(a & 0xfff),
                static_cast<unsigned long long>(0x8000 | ((a >> 12) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

} // namespace troupe
