#include "messages/errors.hpp"

namespace troupe {

std::string to_string(errc x) {
  switch (x) {
    case errc::bad_input: return "bad_input";
    case errc::os_error: return "os_error";
    case errc::bad_state: return "bad_state";
  }
  return "unknown";
}

} // namespace troupe
