#include "runtime/cli/source.hpp"

namespace troupe {

answer_probe http_probe() {
  return [](const client_settings& s, std::string& why) {
    // Refused connections answer at once; a silent host costs this long.
    return api_client{s}.answers(1500, &why);
  };
}

std::optional<std::string> choose_source(const store_command_options& o, source_choice& out,
                                         const answer_probe& answers) {
  out = source_choice{};
  out.store = o.db.empty() ? o.output + "/troupe.db" : o.db;
  if (auto err = resolve_client_settings(o, out.server))
    return err;
  auto local = [&](std::string rule) {
    out.use_server = false;
    out.rule = std::move(rule);
  };
  if (out.server.from == "--server") {
    out.use_server = true;
    out.rule = "--server";
    return std::nullopt;
  }
  if (o.store_given) {
    local(o.db.empty() ? "-o/--output was given" : "--db was given");
    return std::nullopt;
  }
  bool configured = !out.server.server.empty();
  if (!configured) {
    out.server.server = default_server;
    out.server.from = "the default";
  }
  std::string why;
  if (answers(out.server, why)) {
    out.use_server = true;
    out.rule = out.server.from;
    return std::nullopt;
  }
  if (configured) {
    local("no coordinator answers at " + out.server.server + " (from " + out.server.from + ")");
    out.note = "no coordinator answers at " + out.server.server + " (from " + out.server.from
               + (why.empty() ? "" : ": " + why) + "); reading the local store " + out.store;
  } else {
    local("no server is configured and none answers at " + out.server.server);
  }
  return std::nullopt;
}

} // namespace troupe
