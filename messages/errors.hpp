// troupe's one error enum: `caf::error` values of category "troupe" mean a
// request could not be served. A stage that failed is *not* an error: it is a
// normal job_result whose failure code says what happened.
#pragma once

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <cstdint>
#include <string>

namespace troupe {

enum class errc : uint8_t {
  /// Input that cannot be used: a pipeline file, a CLI flag, a message field.
  /// The context names the place (file:line, key, flag).
  bad_input = 1,
  /// The operating system refused an operation we needed (open, mkdir,
  /// posix_spawn, rename); the context carries the path and strerror.
  os_error,
  /// A request arrived in a state that cannot serve it (start twice, say).
  bad_state,
  /// The store (SQLite, PostgreSQL) failed: could not open, migrate, read or
  /// commit. The context has the database's message; nothing was written.
  store_error,
  /// An HTTP request could not be made at all (libcurl setup). HTTP answers
  /// and network failures are job results, not errors.
  http_error,
};

std::string to_string(errc x);

/// For people: an error's text context when it has one (what our adapters
/// and parsers put there), else CAF's rendering of the error.
std::string describe(const caf::error& err);

} // namespace troupe

CAF_ERROR_CODE_ENUM(troupe::errc, "troupe")
