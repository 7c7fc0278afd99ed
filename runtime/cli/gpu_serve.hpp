// troupe gpu serve: the GPU broker of a host without a coordinator, on its
// own HTTP listener: /health, /ready, /metrics and /gpu/* (docs/gpu.md).
#pragma once

#include <string>

namespace troupe {

struct gpu_serve_options {
  std::string listen = "127.0.0.1:8014";
  std::string token;       // every /gpu/ request must carry it ("": none)
  std::string token_file;
  std::string db;          // keep the leases in this store ("": in memory)
};

/// Serves until SIGINT/SIGTERM/SIGHUP (which must be blocked in every
/// thread already). Exit 2: a bad setting or the port in use.
int gpu_serve_command(const gpu_serve_options& o);

} // namespace troupe
