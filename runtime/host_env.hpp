// What a run takes from the process that starts it: its environment, less
// troupe's own secrets, and where Chromium is. Shared by `troupe run` and the
// coordinator.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace troupe {

/// This process's environment, as a map.
std::map<std::string, std::string> own_environment();

/// True for a variable that holds troupe's own secrets, which no stage ever
/// receives: TROUPE_* (TROUPE_TOKEN, TROUPE_TOKEN_FILE, TROUPE_DB, ...),
/// PGPASSWORD and PGPASSFILE.
bool is_troupe_secret(const std::string& name);

/// True for a variable that changes which code a stage's programs load or
/// how a shell reads its input (LD_*, BASH_ENV, ENV, PATH, BASH_FUNC_*,
/// PYTHONPATH, NODE_OPTIONS, ...). A pipeline's author may set them; an API
/// caller never.
bool is_loader_or_shell(const std::string& name);

/// The secrets in a store URL: its password (postgresql://u:PASSWORD@h/db or
/// password=PASSWORD), if any.
std::vector<std::string> store_url_secrets(const std::string& url);

/// The environment every stage starts from: this process's, without troupe's
/// secrets (is_troupe_secret) and without any variable whose value is, or
/// holds, one of `secret_values` (a token or a password copied elsewhere).
std::map<std::string, std::string>
stage_inheritance(const std::vector<std::string>& secret_values);

/// Chromium for the browser strategy: $TROUPE_CHROMIUM, else the first of
/// Debian's and upstream's names in PATH; empty when there is none.
std::string find_chromium();

} // namespace troupe
