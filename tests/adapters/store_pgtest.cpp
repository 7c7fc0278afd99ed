// The store contract on a real PostgreSQL server, started by the ctest
// fixture tests/support/pg_server.sh; its URL is in $TROUPE_PG_URL_FILE.
#include "tests/adapters/store_contract.hpp"
#include "tests/support/pg_url.hpp"

namespace {

struct pg_backend {
  static std::string url(const std::string&) {
    return troupe::test::pg_url();
  }
};

} // namespace

namespace troupe::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreContract, ::testing::Types<pg_backend>);
} // namespace troupe::testing
