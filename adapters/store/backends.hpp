// Private to adapters/store/: the two implementations of sql_store.
#pragma once

#include "adapters/store/sql_store.hpp"

#include <caf/expected.hpp>

#include <memory>

namespace troupe::sql {

/// Opens (creating) the database file at `path` and migrates it.
caf::expected<std::unique_ptr<sql_store>> open_sqlite_store(const std::string& path);

/// Connects to a PostgreSQL server (libpq URI) and migrates its schema.
caf::expected<std::unique_ptr<sql_store>> open_postgres_store(const std::string& url);

} // namespace troupe::sql
