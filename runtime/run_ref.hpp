// What a person may type for a run, everywhere (the CLI on a local store,
// the API, rerun): its id, a unique prefix of it, or its run folder (the
// folder's name, e.g. 20261124_061530, or its path). An ambiguous prefix
// lists the candidates rather than guessing.
#pragma once

#include "adapters/store/store.hpp"

#include <string>
#include <vector>

namespace troupe {

struct run_lookup {
  enum class outcome { found, none, ambiguous, error };
  outcome result = outcome::none;
  run_row run;                   // found
  std::vector<run_row> matches;  // ambiguous: the first few candidates
  bool more = false;             // ambiguous: more than `matches`
  std::string error;             // error: the store's
};

/// Resolves `text` in `db`; `paths` also takes a folder's path (the CLI on
/// its own store; the API takes only a folder's name).
run_lookup resolve_run(store& db, const std::string& text, bool paths = true);

/// The shortest prefix of `id` (at least `min` characters) that names only
/// it in `db` now: what `troupe runs` shows, and what anyone may type.
std::string shortest_unique(store& db, const std::string& id, size_t min = 8);

/// "run id prefix X is ambiguous; it matches:\n  ID  PIPELINE  STATUS  FOLDER ...\ngive more characters"
std::string ambiguity_text(const std::string& text, const run_lookup& l);

} // namespace troupe
