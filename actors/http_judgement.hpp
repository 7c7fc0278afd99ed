// How an HTTP or browser attempt is judged, with no I/O in it: status codes
// to failure codes, whether a page needs a browser, and its title.
#pragma once

#include "messages/status.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// none when `status` is expected (in `expect`, or any 2xx when it is
/// empty); else blocked (401, 403), rate_limited (429), bad_response.
failure_code classify_status(int32_t status, const std::vector<int32_t>& expect);

/// A page that renders its content with JavaScript: almost no visible text,
/// a script, and an empty root element (id root, app, __next, __nuxt) or none.
bool looks_client_rendered(const std::string& html);

/// The text of the first <title>, trimmed; empty when there is none.
std::string page_title(const std::string& html);

} // namespace troupe
