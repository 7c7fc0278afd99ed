// Where a reading command (runs, show, events, logs, rerun) goes: a
// coordinator's API or a local store. One rule for all of them, in the
// order users know from NOMAD_ADDR / GH_HOST:
//   1. --server                 that coordinator (no fallback: it was asked for)
//   2. -o/--output or --db      the local store they name
//   3. $TROUPE_SERVER           that coordinator, if it answers
//   4. server: in the config    that coordinator, if it answers
//   5. http://127.0.0.1:8420    the default coordinator, if it answers
//   6. the local store at output/running_order/troupe.db
// A configured server (3, 4) that does not answer falls back to the local
// store with a note on stderr. `troupe status` prints the choice.
#pragma once

#include "runtime/api_client.hpp"
#include "runtime/store_commands.hpp"

#include <functional>
#include <optional>
#include <string>

namespace troupe {

inline constexpr const char* default_server = "http://127.0.0.1:8420";

struct source_choice {
  bool use_server = false;
  client_settings server;  // the coordinator chosen, or the last one tried
  std::string store;       // the local store's URL (when !use_server)
  std::string rule;        // why, for `troupe status` and notes
  std::string note;        // a fallback the user should hear of ("" when none)
};

/// Whether a coordinator answers at `s` (the probe; tests pass their own).
using answer_probe = std::function<bool(const client_settings& s, std::string& why)>;
answer_probe http_probe();

/// The choice for `o`; an error (a bad config file or token file) names
/// the file and the problem.
std::optional<std::string> choose_source(const store_command_options& o, source_choice& out,
                                         const answer_probe& answers = http_probe());

} // namespace troupe
