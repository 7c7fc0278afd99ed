// The PostgreSQL store (libpqxx): one connection per store object, one
// transaction per apply(); rows about to change are locked (FOR UPDATE) so
// that concurrent writers see each other's transitions. The only file that
// includes pqxx.
#include "adapters/store/backends.hpp"
#include "adapters/store/schema.hpp"
#include "messages/errors.hpp"

#include <pqxx/pqxx>

namespace troupe::sql {

namespace {

class postgres_store final : public sql_store {
public:
  explicit postgres_store(std::string url) : url_(std::move(url)) {
  }

  void open() {
    conn_ = std::make_unique<pqxx::connection>(url_);
    // Quiet NOTICEs ("relation already exists, skipping") on stderr.
    pqxx::nontransaction q(*conn_);
    q.exec("SET client_min_messages = warning");
  }

  std::string kind() const override {
    return "postgresql";
  }

  std::string location() const override {
    return redact_url(url_);
  }

protected:
  std::vector<row> exec(const std::string& sql, const params& p) override {
    std::vector<const char*> args;
    args.reserve(p.size());
    for (auto& v : p)
      args.push_back(v ? v->c_str() : nullptr);
    pqxx::result res;
    if (tx_) {
      res = tx_->exec_params(sql, pqxx::prepare::make_dynamic_params(args));
    } else {
      pqxx::nontransaction q(*conn_);
      res = q.exec_params(sql, pqxx::prepare::make_dynamic_params(args));
    }
    std::vector<row> rows;
    rows.reserve(res.size());
    for (const auto& r : res) {
      row out(r.size());
      for (pqxx::row::size_type c = 0; c < r.size(); ++c)
        if (!r[c].is_null())
          out[c] = std::string(r[c].c_str(), r[c].size());
      rows.push_back(std::move(out));
    }
    return rows;
  }

  void begin() override {
    tx_ = std::make_unique<pqxx::work>(*conn_);
  }

  void commit() override {
    tx_->commit();
    tx_.reset();
  }

  void rollback() noexcept override {
    try {
      if (tx_)
        tx_->abort();
    } catch (...) {
    }
    tx_.reset();
  }

  std::string lock_clause() const override {
    return " FOR UPDATE";
  }

  bool batched_writes() const override {
    return true;
  }

  std::string skip_locked_clause() const override {
    return " FOR UPDATE SKIP LOCKED";
  }

  void lock_migrations() override {
    exec("SELECT pg_advisory_xact_lock(7471657)", {});  // "troupe" migrations
  }

  std::vector<migration> migrations() const override {
    return schema_migrations(dialect::postgresql);
  }

private:
  std::string url_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::work> tx_;
};

} // namespace

caf::expected<std::unique_ptr<sql_store>> open_postgres_store(const std::string& url) {
  auto s = std::make_unique<postgres_store>(url);
  try {
    s->open();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    // The URL is the user's input: a server that does not answer is theirs
    // to fix (exit 2), and the message never shows the password.
    return caf::make_error(errc::bad_input,
                           "--db " + redact_url(url) + ": cannot connect: " + msg);
  }
  if (auto err = s->migrate())
    return err;
  return std::unique_ptr<sql_store>{std::move(s)};
}

} // namespace troupe::sql
