// The store contract on a real PostgreSQL server, started by the ctest
// fixture tests/support/pg_server.sh; its URL is in $TROUPE_PG_URL_FILE.
#include "tests/adapters/store_contract.hpp"

#include <cstdlib>
#include <fstream>

namespace {

struct pg_backend {
  static std::string url(const std::string&) {
    const char* file = std::getenv("TROUPE_PG_URL_FILE");
    if (file == nullptr)
      return "postgresql://missing-TROUPE_PG_URL_FILE";
    std::ifstream in(file);
    std::string url;
    std::getline(in, url);
    return url;
  }
};

} // namespace

namespace troupe::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreContract, ::testing::Types<pg_backend>);
} // namespace troupe::testing
