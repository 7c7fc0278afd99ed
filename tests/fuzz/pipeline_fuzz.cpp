// libFuzzer target for the pipeline parser: any bytes must end in a pipeline
// or an errc::bad_input naming the place, never in a crash, an uncaught
// exception, or unbounded memory. scripts/fuzz-pipeline.sh builds it with
// clang -fsanitize=fuzzer,address; tests/fuzz/replay_main.cpp replays the
// corpus (and every crash input found so far) in the ordinary test build.
#include "messages/errors.hpp"
#include "runtime/pipeline.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto p = troupe::parse_pipeline(text, "/fuzz/pipeline.yaml");
  if (!p) {
    // A rejection must be bad_input with a message that names the file.
    if (p.error().code() != static_cast<uint8_t>(troupe::errc::bad_input)
        || troupe::describe(p.error()).rfind("/fuzz/pipeline.yaml", 0) != 0)
      std::abort();
    return 0;
  }
  // An accepted pipeline must be usable as the runner uses it.
  for (auto& s : p->stages) {
    (void) s.argv(p->dir);
    (void) s.command();
    (void) p->environment(s);
  }
  return 0;
}
