// The URL of the PostgreSQL server that the ctest fixture
// tests/support/pg_server.sh started: the first line of $TROUPE_PG_URL_FILE.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

namespace troupe::test {

inline std::string pg_url() {
  const char* file = std::getenv("TROUPE_PG_URL_FILE");
  if (file == nullptr)
    return "postgresql://missing-TROUPE_PG_URL_FILE";
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  return url;
}

} // namespace troupe::test
