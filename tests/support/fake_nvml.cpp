// A fake libnvidia-ml for tests (CI has no GPU): two devices with fixed
// figures, exporting the entry points adapters/sampling/nvml.cpp binds.
#include <cstring>

extern "C" {

struct fake_memory {
  unsigned long long total, free, used;
};
struct fake_util {
  unsigned int gpu, memory;
};

static int fake_devices[2];

int nvmlInit_v2() { return 0; }
int nvmlShutdown() { return 0; }
int nvmlDeviceGetCount_v2(unsigned int* n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void** dev) {
  if (i >= 2)
    return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *dev = &fake_devices[i];
  return 0;
}
static unsigned index_of(void* dev) {
  return static_cast<unsigned>(static_cast<int*>(dev) - fake_devices);
}
int nvmlDeviceGetName(void* dev, char* buf, unsigned int len) {
  std::strncpy(buf, index_of(dev) == 0 ? "Fake GPU A" : "Fake GPU B", len);
  return 0;
}
int nvmlDeviceGetUUID(void* dev, char* buf, unsigned int len) {
  std::strncpy(buf, index_of(dev) == 0 ? "GPU-fake-0" : "GPU-fake-1", len);
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* dev, fake_memory* m) {
  m->total = 80ULL << 30;
  m->used = (index_of(dev) + 1ULL) << 30;
  m->free = m->total - m->used;
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* dev, fake_util* u) {
  u->gpu = index_of(dev) == 0 ? 37 : 0;
  u->memory = 5;
  return 0;
}
int nvmlDeviceGetTemperature(void*, int, unsigned int* t) { *t = 41; return 0; }

} // extern "C"
