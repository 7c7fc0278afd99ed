// NVML through dlopen. Only the handful of entry points the sampler needs,
// declared here with NVML's C ABI (nvml.h is not needed to build).
#include "adapters/sampling/gpu_source.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace troupe {

namespace {

using nvml_return = int;  // NVML_SUCCESS == 0
using nvml_device = void*;
struct nvml_memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvml_utilization {
  unsigned int gpu;
  unsigned int memory;
};

class nvml_source : public gpu_source {
public:
  explicit nvml_source(const std::string& library) {
    handle_ = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      status_ = library + " not loaded: " + ::dlerror();
      return;
    }
    if (!bind(init_, "nvmlInit_v2") || !bind(shutdown_, "nvmlShutdown")
        || !bind(count_, "nvmlDeviceGetCount_v2")
        || !bind(by_index_, "nvmlDeviceGetHandleByIndex_v2")
        || !bind(name_, "nvmlDeviceGetName") || !bind(uuid_, "nvmlDeviceGetUUID")
        || !bind(memory_, "nvmlDeviceGetMemoryInfo")
        || !bind(util_, "nvmlDeviceGetUtilizationRates")
        || !bind(temp_, "nvmlDeviceGetTemperature"))
      return;
    if (auto rc = init_(); rc != 0) {
      status_ = "nvmlInit_v2 failed with code " + std::to_string(rc);
      return;
    }
    ready_ = true;
  }

  ~nvml_source() override {
    if (ready_)
      shutdown_();
    if (handle_ != nullptr)
      ::dlclose(handle_);
  }

  std::vector<gpu_figures> read() override {
    std::vector<gpu_figures> result;
    if (!ready_)
      return result;
    std::lock_guard<std::mutex> guard{mtx_};
    unsigned int n = 0;
    if (count_(&n) != 0)
      return result;
    for (unsigned int i = 0; i < n; ++i) {
      nvml_device dev = nullptr;
      if (by_index_(i, &dev) != 0)
        continue;
      gpu_figures g;
      g.index = static_cast<int32_t>(i);
      char buf[96] = {0};
      if (name_(dev, buf, sizeof buf) == 0)
        g.name = buf;
      char ubuf[96] = {0};
      if (uuid_(dev, ubuf, sizeof ubuf) == 0)
        g.uuid = ubuf;
      nvml_memory mem{};
      if (memory_(dev, &mem) == 0) {
        g.mem_total_bytes = static_cast<int64_t>(mem.total);
        g.mem_used_bytes = static_cast<int64_t>(mem.used);
      }
      nvml_utilization u{};
      if (util_(dev, &u) == 0)
        g.util_percent = u.gpu;
      unsigned int t = 0;
      if (temp_(dev, 0 /* NVML_TEMPERATURE_GPU */, &t) == 0)
        g.temperature_c = t;
      result.push_back(std::move(g));
    }
    return result;
  }

  std::string status() const override {
    return status_;
  }

private:
  template <class F>
  bool bind(F*& fn, const char* symbol) {
    fn = reinterpret_cast<F*>(::dlsym(handle_, symbol));
    if (fn == nullptr)
      status_ = std::string("NVML symbol missing: ") + symbol;
    return fn != nullptr;
  }

  void* handle_ = nullptr;
  bool ready_ = false;
  std::string status_;
  std::mutex mtx_;
  nvml_return (*init_)() = nullptr;
  nvml_return (*shutdown_)() = nullptr;
  nvml_return (*count_)(unsigned int*) = nullptr;
  nvml_return (*by_index_)(unsigned int, nvml_device*) = nullptr;
  nvml_return (*name_)(nvml_device, char*, unsigned int) = nullptr;
  nvml_return (*uuid_)(nvml_device, char*, unsigned int) = nullptr;
  nvml_return (*memory_)(nvml_device, nvml_memory*) = nullptr;
  nvml_return (*util_)(nvml_device, nvml_utilization*) = nullptr;
  nvml_return (*temp_)(nvml_device, int, unsigned int*) = nullptr;
};

} // namespace

std::shared_ptr<gpu_source> open_nvml(std::string library) {
  if (library.empty()) {
    const char* env = std::getenv("TROUPE_NVML_LIBRARY");
    library = env != nullptr && *env != '\0' ? env : "libnvidia-ml.so.1";
  }
  return std::make_shared<nvml_source>(library);
}

} // namespace troupe
