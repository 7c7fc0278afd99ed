#include "runtime/liveness.hpp"

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace troupe {

namespace {

// State letter and start time (ticks) of `pid` from /proc/PID/stat; false
// when there is no such process.
bool process_stat(int32_t pid, char& state, long long& start) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(in, text))
    return false;
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
  auto close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size())
    return false;
  std::istringstream rest(text.substr(close + 2));
  rest >> state;
  std::string field;
  for (int i = 4; i < 22 && rest >> field; ++i) {
  }
  rest >> start;
  return true;
}

std::string comm_of(int32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

} // namespace

std::string this_host() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string owner_token(const std::string& host) {
  char state = '?';
  long long start = 0;
  process_stat(static_cast<int32_t>(::getpid()), state, start);
  return host + ":" + std::to_string(::getpid()) + ":" + std::to_string(start);
}

owner_state owner_liveness(const run_row& r, const std::string& host, caf::timestamp now,
                           caf::timespan ttl) {
  owner_state out;
  if (is_terminal(r.status))
    return out;
  if (r.host == host && r.pid > 0) {
    auto who = "troupe process " + std::to_string(r.pid) + " on " + r.host;
    char state = '?';
    long long start = -1;
    if (!process_stat(r.pid, state, start)) {
      out.lost = true;
      out.why = who + " is gone";
      return out;
    }
    if (state == 'Z' || state == 'X') {
      out.lost = true;
      out.why = who + " is a zombie (killed, not yet reaped)";
      return out;
    }
    // The token's start time tells a reused pid; rows written before
    // owners existed have none, and fall back on the process's name.
    auto last = r.owner.rfind(':');
    if (!r.owner.empty() && last != std::string::npos) {
      if (std::atoll(r.owner.c_str() + last + 1) != start) {
        out.lost = true;
        out.why = who + " is gone (its pid now belongs to another process)";
      }
      return out;
    }
    if (comm_of(r.pid).rfind("troupe", 0) != 0) {
      out.lost = true;
      out.why = who + " is gone (its pid now belongs to " + comm_of(r.pid) + ")";
    }
    return out;
  }
  // Another host's run: only its heartbeat can tell.
  auto last_sign = r.heartbeat_at ? *r.heartbeat_at : r.updated_at;
  if (now - last_sign > ttl) {
    out.lost = true;
    out.why = "owner " + (r.owner.empty() ? r.host : r.owner) + " sent no heartbeat for "
              + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - last_sign)
                                 .count())
              + "s";
  }
  return out;
}

std::string status_with_owner(const run_row& r, const std::string& host, caf::timestamp now) {
  auto text = to_string(r.status);
  if (owner_liveness(r, host, now).lost)
    text += " (owner lost)";
  return text;
}

} // namespace troupe
