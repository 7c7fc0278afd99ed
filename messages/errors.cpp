#include "messages/errors.hpp"

#include <caf/message.hpp>

namespace troupe {

std::string to_string(errc x) {
  switch (x) {
    case errc::bad_input: return "bad_input";
    case errc::os_error: return "os_error";
    case errc::bad_state: return "bad_state";
    case errc::store_error: return "store_error";
    case errc::http_error: return "http_error";
  }
  return "unknown";
}

std::string describe(const caf::error& err) {
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return caf::to_string(err);
}

} // namespace troupe
