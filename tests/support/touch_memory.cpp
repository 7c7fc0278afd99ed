// Test fixture: touches exactly N MiB of fresh memory, holds it for
// HOLD_MS milliseconds, then exits with EXIT_CODE:
//   troupe_test_touch_memory N [HOLD_MS] [EXIT_CODE]
// Or, with N prefixed by '+', asks for N MiB in one allocation and exits 3
// with "Cannot allocate memory" on stderr when it is refused.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

int main(int argc, char** argv) {
  if (argc < 2)
    return 2;
  bool one_shot = argv[1][0] == '+';
  size_t mib = std::strtoull(argv[1] + (one_shot ? 1 : 0), nullptr, 10);
  int hold_ms = argc > 2 ? std::atoi(argv[2]) : 0;
  int code = argc > 3 ? std::atoi(argv[3]) : 0;
  size_t bytes = mib << 20;
  char* p = static_cast<char*>(std::malloc(bytes));
  if (p == nullptr) {
    std::fprintf(stderr, "touch_memory: %zu MiB: Cannot allocate memory\n", mib);
    return 3;
  }
  for (size_t i = 0; i < bytes; i += 4096)
    p[i] = 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
  std::printf("%d\n", p[bytes / 2]);
  return code;
}
