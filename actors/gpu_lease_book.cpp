#include "actors/gpu_lease_book.hpp"

#include <algorithm>

namespace troupe {

namespace {

std::string mib(int64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

bool same_except_safe_mode(const gpu_policy& a, const gpu_policy& b) {
  return a.default_ttl == b.default_ttl && a.reserve_bytes == b.reserve_bytes
         && a.max_leases_per_holder == b.max_leases_per_holder
         && a.release_grace == b.release_grace;
}

} // namespace

std::string to_string(lease_state s) {
  switch (s) {
    case lease_state::queued: return "queued";
    case lease_state::active: return "active";
    case lease_state::releasing: return "releasing";
  }
  return "?";
}

std::string policy_problem(const gpu_policy& p) {
  if (p.default_ttl.count() < 0)
    return "default_ttl: must be 0 (leases do not expire) or a positive duration";
  if (p.reserve_bytes < 0)
    return "reserve: must not be negative";
  if (p.max_leases_per_holder < 0)
    return "max_leases_per_holder: must be 0 (no limit) or positive";
  if (p.release_grace <= caf::timespan{0} || p.release_grace > std::chrono::hours(1))
    return "release_grace: must be more than 0 and at most 1h";
  return {};
}

gpu_lease_book::gpu_lease_book(std::vector<gpu_device> devices, gpu_policy policy,
                               std::function<std::string()> ids)
  : devices_(std::move(devices)), policy_(policy), ids_(std::move(ids)) {
  std::sort(devices_.begin(), devices_.end(),
            [](const gpu_device& a, const gpu_device& b) { return a.index < b.index; });
}

int64_t gpu_lease_book::booked(const std::string& uuid) const {
  int64_t sum = 0;
  for (auto& [id, l] : leases_) {
    if (l.state == lease_state::queued)
      continue;
    if (std::find(l.gpus.begin(), l.gpus.end(), uuid) != l.gpus.end())
      sum += l.memory_bytes;
  }
  return sum;
}

std::string gpu_lease_book::impossible(const lease_request& r) const {
  if (devices_.empty())
    return "this node has no GPUs";
  if ((r.gpus > 0) == (r.memory_bytes > 0) || r.gpus < 0 || r.memory_bytes < 0)
    return "a lease asks for gpus (whole GPUs) or memory_bytes (a share of one), one of them";
  if (r.gpus > static_cast<int32_t>(devices_.size()))
    return "asks for " + std::to_string(r.gpus) + " GPU(s); this node has "
           + std::to_string(devices_.size());
  if (r.memory_bytes > 0) {
    int64_t most = 0;
    for (auto& d : devices_)
      most = std::max(most, d.memory_total - policy_.reserve_bytes);
    if (r.memory_bytes > most)
      return "asks for " + mib(r.memory_bytes) + "; the largest GPU here has " + mib(most)
             + " to lease (its total less the reserve of " + mib(policy_.reserve_bytes) + ")";
  }
  if (r.ttl && r.ttl->count() < 0)
    return "ttl: must be 0 (no expiry) or positive";
  return {};
}

std::optional<std::vector<std::string>> gpu_lease_book::place(const gpu_lease& l,
                                                              std::string* why) const {
  if (l.exclusive) {
    std::vector<std::string> free;
    auto want = static_cast<size_t>(l.count);
    for (auto& d : devices_)
      if (booked(d.uuid) == 0 && free.size() < want && elsewhere_.count(d.uuid) == 0)
        free.push_back(d.uuid);
    if (free.size() >= want)
      return free;
    if (why != nullptr)
      *why = std::to_string(want) + " whole GPU(s) asked, " + std::to_string(free.size())
             + " carry no lease now" + elsewhere_note();
    return std::nullopt;
  }
  // A share of one GPU: the best fit (least left over), lowest index first.
  const gpu_device* best = nullptr;
  int64_t best_left = 0, most_free = -1;
  std::string most_free_uuid;
  for (auto& d : devices_) {
    bool taken_whole = false;
    for (auto& [id, other] : leases_)
      taken_whole = taken_whole
                    || (other.exclusive && other.state != lease_state::queued
                        && std::find(other.gpus.begin(), other.gpus.end(), d.uuid)
                             != other.gpus.end());
    if (taken_whole || elsewhere_.count(d.uuid) != 0)
      continue;
    int64_t left = d.memory_total - policy_.reserve_bytes - booked(d.uuid);
    if (left > most_free) {
      most_free = left;
      most_free_uuid = d.uuid;
    }
    if (left >= l.memory_bytes && (best == nullptr || left - l.memory_bytes < best_left)) {
      best = &d;
      best_left = left - l.memory_bytes;
    }
  }
  if (best != nullptr)
    return std::vector<std::string>{best->uuid};
  if (why != nullptr)
    *why = "no GPU has " + mib(l.memory_bytes) + " unbooked"
           + (most_free >= 0 ? " (most: " + mib(most_free) + " on " + most_free_uuid + ")"
                             : std::string(" (every GPU is leased whole)"))
           + elsewhere_note();
  return std::nullopt;
}

std::string gpu_lease_book::elsewhere_note() const {
  if (elsewhere_.empty())
    return {};
  std::string out = "; owned by another troupe GPU broker on this host: ";
  bool first = true;
  for (auto& [uuid, who] : elsewhere_) {
    out += (first ? "" : ", ") + uuid + " (" + who + ")";
    first = false;
  }
  return out;
}

void gpu_lease_book::set_elsewhere(const std::string& uuid, const std::string& who) {
  if (who.empty())
    elsewhere_.erase(uuid);
  else
    elsewhere_[uuid] = who;
}

void gpu_lease_book::grant(gpu_lease& l, std::vector<std::string> gpus, caf::timestamp now) {
  l.state = lease_state::active;
  l.gpus = std::move(gpus);
  if (l.exclusive) {
    auto d = std::find_if(devices_.begin(), devices_.end(),
                          [&](const gpu_device& x) { return x.uuid == l.gpus.front(); });
    l.memory_bytes = d != devices_.end() ? d->memory_total : 0;
  }
  l.granted_at = now;
  if (l.ttl.count() > 0)
    l.expires_at = now + l.ttl;
}

lease_outcome gpu_lease_book::request(const lease_request& r, caf::timestamp now) {
  lease_outcome out;
  if (policy_.safe_mode) {
    out.reason = "safe mode is on: GPU leases are denied (the inventory stays readable; "
                 "troupe gpu policy --safe-mode off, POST /gpu/policy or "
                 "TROUPE_GPU_SAFE_MODE=0 turns it off)";
    return out;
  }
  if (auto no = impossible(r); !no.empty()) {
    out.reason = no;
    return out;
  }
  if (policy_.max_leases_per_holder > 0) {
    auto held = std::count_if(leases_.begin(), leases_.end(), [&](const auto& kv) {
      return kv.second.holder == r.holder && kv.second.state != lease_state::releasing;
    });
    if (held >= policy_.max_leases_per_holder) {
      out.reason = r.holder + " holds " + std::to_string(held) + " lease(s) already "
                   + "(max_leases_per_holder: " + std::to_string(policy_.max_leases_per_holder)
                   + ")";
      return out;
    }
  }
  gpu_lease l;
  l.id = ids_ ? ids_() : "lease-" + std::to_string(next_id_++);
  l.holder = r.holder;
  l.exclusive = r.gpus > 0;
  l.count = std::max(1, r.gpus);
  l.memory_bytes = r.memory_bytes;
  l.priority = r.priority;
  l.ttl = r.ttl ? *r.ttl : policy_.default_ttl;
  l.requested_at = now;
  // No overtaking: a request queues behind any of at least its priority.
  bool behind = std::any_of(queue_.begin(), queue_.end(), [&](const std::string& id) {
    return leases_.at(id).priority >= r.priority;
  });
  std::string why;
  std::optional<std::vector<std::string>> where;
  if (!behind)
    where = place(l, &why);
  else
    why = std::to_string(queue_.size()) + " request(s) queued before it";
  if (where) {
    grant(l, std::move(*where), now);
    out.kind = lease_outcome::granted;
    out.lease = l;
    leases_.emplace(l.id, std::move(l));
    return out;
  }
  if (!r.wait) {
    out.reason = why;
    return out;
  }
  out.kind = lease_outcome::queued;
  out.reason = why;
  out.lease = l;
  auto pos = std::find_if(queue_.begin(), queue_.end(), [&](const std::string& id) {
    return leases_.at(id).priority < r.priority;
  });
  queue_.insert(pos, l.id);
  leases_.emplace(l.id, std::move(l));
  return out;
}

std::optional<gpu_lease> gpu_lease_book::renew(const std::string& id, caf::timestamp now) {
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second.state != lease_state::active)
    return std::nullopt;
  auto& l = it->second;
  if (l.expires_at && *l.expires_at <= now)
    return std::nullopt;  // (advance() has not run yet: it has expired all the same)
  if (l.ttl.count() > 0)
    l.expires_at = now + l.ttl;
  return l;
}

bool gpu_lease_book::release(const std::string& id, caf::timestamp now, const std::string& why) {
  auto it = leases_.find(id);
  if (it == leases_.end())
    return false;
  auto& l = it->second;
  if (l.state == lease_state::queued) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), id), queue_.end());
    leases_.erase(it);
    return true;
  }
  if (l.state == lease_state::active) {
    l.state = lease_state::releasing;
    l.released_at = now;
    l.end_reason = why;
  }
  return true;
}

void gpu_lease_book::free(const std::string& id, lease_changes& out) {
  auto it = leases_.find(id);
  if (it == leases_.end())
    return;
  out.freed.push_back(it->second);
  leases_.erase(it);
}

std::optional<gpu_lease> gpu_lease_book::processes_gone(const std::string& id, caf::timestamp) {
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second.state != lease_state::releasing)
    return std::nullopt;
  auto freed = it->second;
  leases_.erase(it);
  return freed;
}

lease_changes gpu_lease_book::advance(caf::timestamp now) {
  lease_changes out;
  std::vector<std::string> past_grace;
  for (auto& [id, l] : leases_) {
    if (l.state == lease_state::active && l.expires_at && *l.expires_at <= now) {
      l.state = lease_state::releasing;
      l.released_at = now;
      l.end_reason = "expired";
      out.expired.push_back(l);
    }
    if (l.state == lease_state::releasing && *l.released_at + policy_.release_grace <= now)
      past_grace.push_back(id);
  }
  for (auto& id : past_grace) {
    out.freed_by_grace.push_back(id);
    free(id, out);
  }
  // The queue in order; the first that does not fit holds the rest back.
  while (!queue_.empty()) {
    auto& l = leases_.at(queue_.front());
    auto where = place(l, nullptr);
    if (!where)
      break;
    grant(l, std::move(*where), now);
    out.granted.push_back(l);
    queue_.erase(queue_.begin());
  }
  return out;
}

bool gpu_lease_book::restore(const gpu_lease& l) {
  if (leases_.count(l.id) != 0)
    return false;
  for (auto& uuid : l.gpus)
    if (std::none_of(devices_.begin(), devices_.end(),
                     [&](const gpu_device& d) { return d.uuid == uuid; }))
      return false;
  leases_.emplace(l.id, l);
  if (l.state == lease_state::queued) {
    auto pos = std::find_if(queue_.begin(), queue_.end(), [&](const std::string& id) {
      return leases_.at(id).priority < l.priority;
    });
    queue_.insert(pos, l.id);
  }
  return true;
}

std::string gpu_lease_book::set_policy(const gpu_policy& p) {
  if (auto problem = policy_problem(p); !problem.empty())
    return problem;
  if (policy_.safe_mode && p.safe_mode && !same_except_safe_mode(policy_, p))
    return "safe mode is on: only safe_mode may change (turn it off first)";
  policy_ = p;
  return {};
}

std::vector<gpu_lease> gpu_lease_book::leases() const {
  std::vector<gpu_lease> out;
  for (auto& [id, l] : leases_)
    out.push_back(l);
  return out;
}

std::optional<gpu_lease> gpu_lease_book::find(const std::string& id) const {
  auto it = leases_.find(id);
  if (it == leases_.end())
    return std::nullopt;
  return it->second;
}

} // namespace troupe
