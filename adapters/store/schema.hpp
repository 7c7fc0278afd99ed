// The numbered migrations of the store schema, per dialect. Private to
// adapters/store/. Append a migration; never edit one that has shipped.
#pragma once

#include "adapters/store/sql_store.hpp"

namespace troupe::sql {

enum class dialect { sqlite, postgresql };

std::vector<migration> schema_migrations(dialect d);

} // namespace troupe::sql
