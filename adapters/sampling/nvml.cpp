// NVML through dlopen. Only the entry points troupe needs, declared here
// with NVML's C ABI (nvml.h is not needed to build). The required ones
// (init, count, handle, name, UUID, memory, utilisation, temperature) make
// the source unavailable when missing; the others (power, MIG, processes,
// PCI, the driver's version, error strings) are used where the driver has them.
#include "adapters/sampling/gpu_source.hpp"
#include "adapters/sampling/topology.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <map>
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
struct nvml_process {  // nvmlProcessInfo_t (v2 and v3 layout)
  unsigned int pid;
  unsigned long long used_memory;
  unsigned int gpu_instance;
  unsigned int compute_instance;
};
struct nvml_pci {  // nvmlPciInfo_t
  char bus_id_legacy[16];
  unsigned int domain, bus, device, device_id, subsystem_id;
  char bus_id[32];
};
constexpr nvml_return insufficient_size = 7;
constexpr unsigned long long not_available = ~0ULL;  // NVML_VALUE_NOT_AVAILABLE

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
    optional(power_, "nvmlDeviceGetPowerUsage");
    optional(mig_, "nvmlDeviceGetMigMode");
    optional(procs_, "nvmlDeviceGetComputeRunningProcesses_v3");
    if (procs_ == nullptr)
      optional(procs_, "nvmlDeviceGetComputeRunningProcesses_v2");
    optional(pci_, "nvmlDeviceGetPciInfo_v3");
    optional(error_string_, "nvmlErrorString");
    optional(driver_, "nvmlSystemGetDriverVersion");
    if (auto rc = init_(); rc != 0) {
      status_ = "nvmlInit_v2 failed: " + error_text(rc);
      return;
    }
    char version[96] = {0};
    if (driver_ != nullptr && driver_(version, sizeof version) == 0)
      driver_version_ = version;
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
      g.mem_free_bytes = static_cast<int64_t>(mem.free);
      extras(dev, g);
      result.push_back(std::move(g));
    }
    return result;
  }

  std::string status() const override {
    return status_;
  }

  std::string driver_version() const override {
    return driver_version_;
  }

private:
  std::string error_text(nvml_return rc) const {
    std::string text = error_string_ != nullptr ? error_string_(rc) : "";
    return (text.empty() ? std::string("NVML error") : text) + " (code " + std::to_string(rc)
           + ")";
  }

  // What the driver may not have: power, MIG mode, PCI bus and locality,
  // the processes using the GPU.
  void extras(nvml_device dev, gpu_figures& g) {
    unsigned int mw = 0;
    if (power_ != nullptr && power_(dev, &mw) == 0)
      g.power_watts = mw / 1000.0;
    unsigned int current = 0, pending = 0;
    if (mig_ == nullptr || mig_(dev, &current, &pending) != 0)
      g.mig_mode = "unsupported";
    else
      g.mig_mode = current != 0 ? "enabled" : "disabled";
    nvml_pci pci{};
    if (pci_ != nullptr && pci_(dev, &pci) == 0) {
      g.pci_bus_id = pci.bus_id;
      auto near = locality_.find(g.pci_bus_id);
      if (near == locality_.end())
        near = locality_.emplace(g.pci_bus_id, gpu_locality_of(g.pci_bus_id)).first;
      g.near_cores = near->second.cores;
      g.numa_node = near->second.numa_node;
    }
    if (procs_ == nullptr)
      return;
    std::vector<nvml_process> infos(16);
    for (int tries = 0; tries < 3; ++tries) {
      auto count = static_cast<unsigned int>(infos.size());
      auto rc = procs_(dev, &count, infos.data());
      if (rc == insufficient_size) {
        infos.resize(count + 8);
        continue;
      }
      if (rc != 0)
        return;
      for (unsigned int k = 0; k < count; ++k)
        g.processes.push_back(
          {static_cast<int32_t>(infos[k].pid),
           infos[k].used_memory == not_available ? -1
                                                 : static_cast<int64_t>(infos[k].used_memory)});
      return;
    }
  }

  template <class F>
  void optional(F*& fn, const char* symbol) {
    fn = reinterpret_cast<F*>(::dlsym(handle_, symbol));
  }

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
  nvml_return (*power_)(nvml_device, unsigned int*) = nullptr;
  nvml_return (*mig_)(nvml_device, unsigned int*, unsigned int*) = nullptr;
  nvml_return (*procs_)(nvml_device, unsigned int*, nvml_process*) = nullptr;
  nvml_return (*pci_)(nvml_device, nvml_pci*) = nullptr;
  const char* (*error_string_)(nvml_return) = nullptr;
  nvml_return (*driver_)(char*, unsigned int) = nullptr;
  std::string driver_version_;
  std::map<std::string, gpu_locality> locality_;  // by PCI bus id, read once
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
