#include "runtime/run_ref.hpp"

#include "messages/errors.hpp"

#include <filesystem>

namespace troupe {

run_lookup resolve_run(store& db, const std::string& text, bool paths) {
  run_lookup out;
  if (text.empty())
    return out;
  constexpr int32_t shown = 10;
  auto found = db.runs_by_prefix(text, shown + 1);
  if (!found) {
    out.result = run_lookup::outcome::error;
    out.error = describe(found.error());
    return out;
  }
  for (auto& r : *found)
    if (r.run_id == text) {
      out.result = run_lookup::outcome::found;
      out.run = r;
      return out;
    }
  if (found->size() == 1) {
    out.result = run_lookup::outcome::found;
    out.run = found->front();
    return out;
  }
  if (found->size() > 1) {
    out.result = run_lookup::outcome::ambiguous;
    out.more = found->size() > static_cast<size_t>(shown);
    out.matches.assign(found->begin(), found->begin() + std::min<size_t>(found->size(), shown));
    return out;
  }
  // A run folder: its name, or (paths) the path as printed by `troupe run`.
  namespace fs = std::filesystem;
  bool bare_name = text.find('/') == std::string::npos;
  if (!bare_name && !paths)
    return out;
  auto as_path = fs::absolute(fs::path(text)).lexically_normal();
  if (!as_path.has_filename())
    as_path = as_path.parent_path();
  run_filter all;
  all.limit = 100000;
  auto runs = db.runs(all);
  if (!runs) {
    out.result = run_lookup::outcome::error;
    out.error = describe(runs.error());
    return out;
  }
  for (auto& r : *runs) {
    if (r.run_dir.empty())
      continue;
    auto dir = fs::path(r.run_dir).lexically_normal();
    if ((paths && dir == as_path) || (bare_name && dir.filename() == text)) {
      out.result = run_lookup::outcome::found;
      out.run = r;
      return out;
    }
  }
  return out;
}

std::string shortest_unique(store& db, const std::string& id, size_t min) {
  for (size_t n = std::min(min, id.size()); n < id.size(); ++n) {
    auto found = db.runs_by_prefix(id.substr(0, n), 2);
    if (found && found->size() == 1)
      return id.substr(0, n);
    if (!found)
      break;
  }
  return id;
}

std::string ambiguity_text(const std::string& text, const run_lookup& l) {
  std::string list;
  for (auto& r : l.matches)
    list += "\n  " + r.run_id + "  " + r.pipeline + "  " + to_string(r.status) + "  "
            + std::filesystem::path(r.run_dir).filename().string();
  if (l.more)
    list += "\n  ...";
  return "run id prefix " + text + " is ambiguous; it matches:" + list + "\ngive more characters";
}

} // namespace troupe
