// gpu_lease_book: the GPU broker's decisions, with no actors in it. It
// knows the node's GPUs (by UUID) and every lease on them, and answers:
// grant a request now, queue it (priority, then arrival), or deny it with a
// reason; renew, release; what expires; when a released lease's memory is
// really free. Time comes in as arguments (house style: decisions are plain
// classes with injected time), so every expiry is exact under test.
//
// Whole-GPU leases (`gpus: N`) are exclusive: such a GPU carries nothing
// else. Memory leases (`memory_bytes`) share one GPU while the booked sum
// stays within its total minus the policy's reserve. A released or expired
// lease keeps its booking ("releasing") until the verifier reports its
// processes gone, or `release_grace` has passed: the next grant must not
// be an out-of-memory waiting to happen.
#pragma once

#include "messages/gpu_broker.hpp"

#include <caf/optional.hpp>
#include <caf/timestamp.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

/// One GPU as the book sees it (from the NVML inventory).
struct gpu_device {
  std::string uuid;  // the identity everywhere
  int32_t index = 0; // for display only
  std::string name;
  int64_t memory_total = 0;  // bytes
};

/// Why `p` cannot be the policy ("" when it can).
std::string policy_problem(const gpu_policy& p);

struct lease_request {
  std::string holder;         // who asks: "run/stage#attempt", a service name
  int32_t gpus = 0;           // whole GPUs; or
  int64_t memory_bytes = 0;   // a share of one GPU
  caf::optional<caf::timespan> ttl;  // none: the policy's default; 0: no expiry
  int32_t priority = 0;       // higher first when requests queue
  bool wait = false;          // queue rather than be denied when nothing fits now
};

enum class lease_state : uint8_t { queued, active, releasing };
std::string to_string(lease_state s);

struct gpu_lease {
  std::string id;
  std::string holder;
  lease_state state = lease_state::queued;
  std::vector<std::string> gpus;  // UUIDs
  bool exclusive = false;         // whole GPUs
  int32_t count = 1;              // GPUs it holds (asked for)
  int64_t memory_bytes = 0;       // booked per GPU (a whole GPU: its total)
  int32_t priority = 0;
  caf::timespan ttl{0};           // 0: no expiry
  caf::timestamp requested_at;
  caf::optional<caf::timestamp> granted_at;
  caf::optional<caf::timestamp> expires_at;
  caf::optional<caf::timestamp> released_at;  // releasing since
  std::string end_reason;         // released, expired, ...
};

struct lease_outcome {
  enum kind_t { granted, queued, denied } kind = denied;
  gpu_lease lease;     // granted: the lease; queued: the ticket (same id later)
  std::string reason;  // denied: why; queued: what it waits for
};

/// What time passing did (advance()).
struct lease_changes {
  std::vector<gpu_lease> expired;   // TTL passed unrenewed: holders to be told
  std::vector<gpu_lease> freed;     // bookings given back (processes gone or grace over)
  std::vector<std::string> freed_by_grace;  // ids of those freed only by the grace
  std::vector<gpu_lease> granted;   // queued requests that fit now
};

class gpu_lease_book {
public:
  /// `ids` makes lease ids (tests: a counter); default "lease-1", "lease-2", ...
  gpu_lease_book(std::vector<gpu_device> devices, gpu_policy policy,
                 std::function<std::string()> ids = nullptr);

  lease_outcome request(const lease_request& r, caf::timestamp now);
  /// Extends an active lease by its TTL from now; none for an unknown,
  /// released or expired one.
  std::optional<gpu_lease> renew(const std::string& id, caf::timestamp now);
  /// An active lease starts releasing (its booking held until its
  /// processes are gone); a queued one is withdrawn. False when unknown.
  bool release(const std::string& id, caf::timestamp now, const std::string& why = "released");
  /// The verifier saw none of a releasing lease's processes on its GPUs:
  /// its booking is freed now (and queued requests may be granted: advance()).
  std::optional<gpu_lease> processes_gone(const std::string& id, caf::timestamp now);
  /// Expiries, graces and the queue, as of `now`.
  lease_changes advance(caf::timestamp now);
  /// A lease as it was stored before a restart: taken back as it stands
  /// (a queued one joins the queue by priority). False when its GPUs are
  /// not this node's any more, or its id is taken.
  bool restore(const gpu_lease& l);

  /// The policy; a change is refused with the reason, and while safe mode
  /// is on only turning it off (or it on again) is accepted.
  std::string set_policy(const gpu_policy& p);
  const gpu_policy& policy() const {
    return policy_;
  }
  const std::vector<gpu_device>& devices() const {
    return devices_;
  }
  /// Every lease not yet freed: queued, active and releasing, by id.
  std::vector<gpu_lease> leases() const;
  std::optional<gpu_lease> find(const std::string& id) const;
  /// Bytes booked on `uuid` (active and releasing).
  int64_t booked(const std::string& uuid) const;
  /// `uuid` is (who non-empty: "process N (...)") or is no longer owned by
  /// another broker on the host: no lease is placed on it while it is.
  void set_elsewhere(const std::string& uuid, const std::string& who);
  const std::map<std::string, std::string>& elsewhere() const {
    return elsewhere_;
  }

private:
  /// Where `l` would fit now (its GPUs), or why not.
  std::optional<std::vector<std::string>> place(const gpu_lease& l, std::string* why) const;
  void grant(gpu_lease& l, std::vector<std::string> gpus, caf::timestamp now);
  void free(const std::string& id, lease_changes& out);
  std::string impossible(const lease_request& r) const;
  std::string elsewhere_note() const;

  std::vector<gpu_device> devices_;
  gpu_policy policy_;
  std::function<std::string()> ids_;
  std::map<std::string, gpu_lease> leases_;  // not yet freed
  std::vector<std::string> queue_;           // queued ids: priority, then arrival
  std::map<std::string, std::string> elsewhere_;  // GPUs another broker owns: who
  int64_t next_id_ = 1;
};

} // namespace troupe
