// The store contract on SQLite: a fresh database file per test.
#include "tests/adapters/store_contract.hpp"

#include <unistd.h>

namespace {

struct sqlite_backend {
  static std::string url(const std::string& test) {
    return "sqlite:/tmp/troupe-store-test-" + std::to_string(::getpid()) + "/" + test + ".db";
  }
};

} // namespace

namespace troupe::testing {
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, StoreContract, ::testing::Types<sqlite_backend>);
} // namespace troupe::testing
