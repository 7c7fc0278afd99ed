// A fake libnvidia-ml for tests (CI has no GPU), loaded through the same
// dlopen path as the real one (adapters/sampling/nvml.cpp). NVML's C ABI,
// as far as troupe calls it.
//
// Set by the environment, read at each call (a test may change the state
// file while troupe runs):
//   TROUPE_FAKE_NVML_GPUS=N        devices (default 2; 80 GiB each)
//   TROUPE_FAKE_NVML_STATE=FILE    lines of
//       proc INDEX PID BYTES       a compute process on GPU INDEX using BYTES
//       fail CALL CODE             CALL (init, count, memory, processes, power,
//                                  mig) returns CODE (an NVML error number)
//       nomig                      nvmlDeviceGetMigMode is not supported
// Memory used on a GPU is 1 GiB × (index + 1) plus its processes' bytes.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct proc {
  unsigned index;
  unsigned pid;
  unsigned long long bytes;
};

struct state {
  std::vector<proc> procs;
  std::vector<std::pair<std::string, int>> fails;
  bool nomig = false;
};

state read_state() {
  state s;
  const char* path = std::getenv("TROUPE_FAKE_NVML_STATE");
  if (path == nullptr)
    return s;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string kind;
    words >> kind;
    if (kind == "proc") {
      proc p{};
      if (words >> p.index >> p.pid >> p.bytes)
        s.procs.push_back(p);
    } else if (kind == "fail") {
      std::string call;
      int code = 999;
      words >> call >> code;
      s.fails.emplace_back(call, code);
    } else if (kind == "nomig") {
      s.nomig = true;
    }
  }
  return s;
}

int failing(const char* call) {
  for (auto& [c, code] : read_state().fails)
    if (c == call)
      return code;
  return 0;
}

unsigned device_count() {
  const char* n = std::getenv("TROUPE_FAKE_NVML_GPUS");
  return n != nullptr ? static_cast<unsigned>(std::atoi(n)) : 2u;
}

int devices[64];

unsigned index_of(void* dev) {
  return static_cast<unsigned>(static_cast<int*>(dev) - devices);
}

} // namespace

extern "C" {

struct fake_memory {
  unsigned long long total, free, used;
};
struct fake_util {
  unsigned int gpu, memory;
};
struct fake_process {  // nvmlProcessInfo_t (v2/v3)
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
struct fake_pci {  // nvmlPciInfo_t
  char busIdLegacy[16];
  unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
};

int nvmlInit_v2() { return failing("init"); }
int nvmlShutdown() { return 0; }
const char* nvmlErrorString(int code) {
  return code == 999 ? "Unknown Error" : code == 9 ? "Driver Not Loaded" : "fake NVML error";
}
int nvmlSystemGetDriverVersion(char* buf, unsigned int len) {
  std::strncpy(buf, "999.99-fake", len);
  return 0;
}
int nvmlDeviceGetCount_v2(unsigned int* n) {
  if (int rc = failing("count"))
    return rc;
  *n = device_count();
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void** dev) {
  if (i >= device_count() || i >= 64)
    return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *dev = &devices[i];
  return 0;
}
int nvmlDeviceGetName(void* dev, char* buf, unsigned int len) {
  std::string name = std::string("Fake GPU ") + static_cast<char>('A' + index_of(dev));
  std::strncpy(buf, name.c_str(), len);
  return 0;
}
int nvmlDeviceGetUUID(void* dev, char* buf, unsigned int len) {
  std::strncpy(buf, ("GPU-fake-" + std::to_string(index_of(dev))).c_str(), len);
  return 0;
}
int nvmlDeviceGetPciInfo_v3(void* dev, fake_pci* p) {
  std::memset(p, 0, sizeof *p);
  p->bus = 0x3b + index_of(dev);
  std::snprintf(p->busId, sizeof p->busId, "00000000:%02X:00.0", p->bus);
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* dev, fake_memory* m) {
  if (int rc = failing("memory"))
    return rc;
  m->total = 80ULL << 30;
  m->used = (index_of(dev) + 1ULL) << 30;
  for (auto& p : read_state().procs)
    if (p.index == index_of(dev))
      m->used += p.bytes;
  m->free = m->total > m->used ? m->total - m->used : 0;
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* dev, fake_util* u) {
  u->gpu = index_of(dev) == 0 ? 37 : 0;
  u->memory = 5;
  return 0;
}
int nvmlDeviceGetTemperature(void*, int, unsigned int* t) {
  *t = 41;
  return 0;
}
int nvmlDeviceGetPowerUsage(void* dev, unsigned int* milliwatts) {
  if (int rc = failing("power"))
    return rc;
  *milliwatts = 70000 + 1000 * index_of(dev);
  return 0;
}
int nvmlDeviceGetMigMode(void*, unsigned int* current, unsigned int* pending) {
  if (read_state().nomig)
    return 3;  // NVML_ERROR_NOT_SUPPORTED
  if (int rc = failing("mig"))
    return rc;
  *current = *pending = 0;
  return 0;
}
int nvmlDeviceGetComputeRunningProcesses_v3(void* dev, unsigned int* count,
                                            fake_process* infos) {
  if (int rc = failing("processes"))
    return rc;
  std::vector<fake_process> mine;
  for (auto& p : read_state().procs)
    if (p.index == index_of(dev))
      mine.push_back({p.pid, p.bytes, 0xFFFFFFFF, 0xFFFFFFFF});
  if (*count < mine.size()) {
    *count = static_cast<unsigned int>(mine.size());
    return 7;  // NVML_ERROR_INSUFFICIENT_SIZE
  }
  *count = static_cast<unsigned int>(mine.size());
  for (size_t i = 0; i < mine.size(); ++i)
    infos[i] = mine[i];
  return 0;
}

} // extern "C"
