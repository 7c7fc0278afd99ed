// The SQLite store: one file, WAL journal, foreign keys on, writers
// serialised by BEGIN IMMEDIATE and a busy timeout. The only file that
// includes sqlite3.h.
#include "adapters/store/backends.hpp"
#include "messages/errors.hpp"

#include <chrono>
#include <map>
#include <thread>

#include "adapters/store/schema.hpp"

#include <sqlite3.h>

namespace troupe::sql {

namespace {

class sqlite_store final : public sql_store {
public:
  void checkpoint() noexcept {
    sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  }

  explicit sqlite_store(std::string path) : path_(std::move(path)) {
  }

  ~sqlite_store() override {
    for (auto& [sql, stmt] : cache_)
      sqlite3_finalize(stmt);
    if (db_ != nullptr)
      sqlite3_close(db_);
  }

  void open() {
    int rc = sqlite3_open_v2(path_.c_str(), &db_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK)
      throw db_error(db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    // Another process may hold the write lock for a while (a group commit).
    sqlite3_busy_timeout(db_, 10000);
    enter_wal();
    // FULL: a commit is on disk before the store says so (power loss included).
    exec("PRAGMA synchronous = FULL", {});
    exec("PRAGMA foreign_keys = ON", {});
  }

  std::string kind() const override {
    return "sqlite";
  }

  std::string location() const override {
    return path_;
  }

protected:
  std::vector<row> exec(const std::string& sql, const params& p) override {
    auto* stmt = prepare(sql);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (size_t i = 0; i < p.size(); ++i) {
      // "$3" is a *named* parameter to SQLite, numbered by first appearance:
      // look its index up by name.
      auto name = "$" + std::to_string(i + 1);
      int at = sqlite3_bind_parameter_index(stmt, name.c_str());
      if (at == 0)
        throw db_error("no parameter " + name + " in: " + sql);
      int rc = p[i] ? sqlite3_bind_text(stmt, at, p[i]->data(), static_cast<int>(p[i]->size()),
                                        SQLITE_TRANSIENT)
                    : sqlite3_bind_null(stmt, at);
      if (rc != SQLITE_OK)
        throw db_error(std::string(sqlite3_errmsg(db_)) + " (binding $" + std::to_string(i + 1)
                       + ")");
    }
    std::vector<row> rows;
    for (;;) {
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE)
        break;
      if (rc != SQLITE_ROW) {
        std::string msg = sqlite3_errmsg(db_);
        sqlite3_reset(stmt);
        throw db_error(msg);
      }
      int n = sqlite3_column_count(stmt);
      row r(static_cast<size_t>(n));
      for (int c = 0; c < n; ++c) {
        if (sqlite3_column_type(stmt, c) == SQLITE_NULL)
          continue;
        auto* txt = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
        r[static_cast<size_t>(c)] =
          std::string(txt, static_cast<size_t>(sqlite3_column_bytes(stmt, c)));
      }
      rows.push_back(std::move(r));
    }
    sqlite3_reset(stmt);
    return rows;
  }

  void begin() override {
    exec("BEGIN IMMEDIATE", {});
  }



  void commit() override {
    exec("COMMIT", {});
  }

  void rollback() noexcept override {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  std::string lock_clause() const override {
    return "";  // BEGIN IMMEDIATE already holds the database's write lock
  }

  bool batched_writes() const override {
    return false;
  }

  std::string skip_locked_clause() const override {
    return "";
  }

  void lock_migrations() override {
    // BEGIN IMMEDIATE: one writer at a time.
  }

  std::vector<migration> migrations() const override {
    return schema_migrations(dialect::sqlite);
  }

private:
  // Switching a new file to WAL needs its exclusive lock. When two processes
  // open the same new file at once, SQLite answers BUSY at once, without the
  // busy handler (waiting could deadlock), so this waits here instead. Runs
  // at open, on the opener's own thread, never on a CAF scheduler thread.
  void enter_wal() {
    using namespace std::chrono_literals;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      int rc = sqlite3_exec(db_, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK)
        return;
      if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() > deadline)
        throw db_error(std::string(sqlite3_errmsg(db_)) + " (setting journal_mode = WAL)");
      std::this_thread::sleep_for(5ms);
    }
  }

  sqlite3_stmt* prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end())
      return it->second;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr)
        != SQLITE_OK)
      throw db_error(std::string(sqlite3_errmsg(db_)) + " in: " + sql);
    // Schema statements run once; only cache what is run again and again.
    if (sql.rfind("CREATE", 0) == 0 || sql.rfind("PRAGMA", 0) == 0) {
      transient_.reset(stmt);
      return stmt;
    }
    cache_.emplace(sql, stmt);
    return stmt;
  }

  struct finalizer {
    void operator()(sqlite3_stmt* s) const {
      sqlite3_finalize(s);
    }
  };

  std::string path_;
  sqlite3* db_ = nullptr;
  std::map<std::string, sqlite3_stmt*> cache_;
  std::unique_ptr<sqlite3_stmt, finalizer> transient_;
};

} // namespace

caf::expected<std::unique_ptr<sql_store>> open_sqlite_store(const std::string& path) {
  auto s = std::make_unique<sqlite_store>(path);
  try {
    s->open();
  } catch (const std::exception& e) {
    return caf::make_error(errc::bad_input, "--db " + path + ": cannot open: " + e.what());
  }
  if (auto err = s->migrate())
    return err;
  // The migrations' pages go into the main file now, not at the WAL's first
  // automatic checkpoint (1000 pages): a new store takes ~100 KB, not ~190 KB
  // of WAL that a nearly full disk may not have. Best effort: a reader that
  // holds the WAL open only makes this a partial checkpoint.
  s->checkpoint();
  return std::unique_ptr<sql_store>{std::move(s)};
}

} // namespace troupe::sql
