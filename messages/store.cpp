#include "messages/store.hpp"

#include <iterator>

namespace troupe {

std::string to_string(event_level x) {
  switch (x) {
    case event_level::info: return "info";
    case event_level::warn: return "warn";
    case event_level::error: return "error";
  }
  return "info";
}

caf::optional<event_level> parse_event_level(const std::string& s) {
  if (s == "info")
    return event_level::info;
  if (s == "warn" || s == "warning")
    return event_level::warn;
  if (s == "error")
    return event_level::error;
  return caf::none;
}

namespace {

template <class T>
void move_append(std::vector<T>& to, std::vector<T>& from) {
  if (to.empty()) {
    to = std::move(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

} // namespace

void store_batch::append(store_batch&& other) {
  move_append(runs, other.runs);
  move_append(jobs, other.jobs);
  move_append(attempts, other.attempts);
  move_append(events, other.events);
}

} // namespace troupe
