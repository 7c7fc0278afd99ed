#include "adapters/store/store.hpp"

#include "adapters/store/backends.hpp"
#include "messages/errors.hpp"

#include <filesystem>
#include <regex>
#include <system_error>

namespace troupe {

std::string redact_url(const std::string& url) {
  static const std::regex pw(R"(^([a-z]+://[^:/@]*:)[^@]*@)");
  return std::regex_replace(url, pw, "$1***@");
}

caf::error check_store_url(const std::string& url) {
  if (url.empty())
    return caf::make_error(errc::bad_input, "--db: empty (give a file or postgresql://...)");
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0)
    return caf::none;
  auto scheme = url.find("://");
  if (scheme != std::string::npos)
    return caf::make_error(errc::bad_input,
                           "--db " + redact_url(url) + ": unknown scheme '" + url.substr(0, scheme)
                             + "' (use postgresql://..., sqlite:PATH or a file path)");
  if (url == "sqlite:")
    return caf::make_error(errc::bad_input, "--db " + url + ": no file path after sqlite:");
  return caf::none;
}

caf::expected<std::unique_ptr<store>> open_store(const std::string& url) {
  if (auto err = check_store_url(url))
    return err;
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    auto s = sql::open_postgres_store(url);
    if (!s)
      return std::move(s.error());
    return std::unique_ptr<store>{std::move(*s)};
  }
  std::string path = url.rfind("sqlite:", 0) == 0 ? url.substr(7) : url;
  auto dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty())
    std::filesystem::create_directories(dir, ec);
  if (ec)
    return caf::make_error(errc::bad_input,
                           "--db " + path + ": cannot create " + dir.string() + ": " + ec.message());
  auto s = sql::open_sqlite_store(path);
  if (!s)
    return std::move(s.error());
  return std::unique_ptr<store>{std::move(*s)};
}

} // namespace troupe
