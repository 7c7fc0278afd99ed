// store_writer on a real SQLite file: health is counted per run (one run's
// refused row does not fail another), and unfinished runs get heartbeats.
#include "actors/store_writer.hpp"
#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "tests/support/real_system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <iterator>
#include <thread>

#include <sqlite3.h>

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct StoreWriterTest : troupe::test::real_system_test {
  std::unique_ptr<store> open() {
    auto db = open_store("sqlite:" + dir + "/t.db");
    EXPECT_TRUE(db) << (db ? "" : describe(db.error()));
    return db ? std::move(*db) : nullptr;
  }
  static store_batch run_batch(const std::string& id, run_status status,
                               const std::string& owner = "me") {
    store_batch b;
    run_row r;
    r.run_id = id;
    r.pipeline = "p";
    r.pipeline_file = "/p.yaml";
    r.run_dir = "/tmp/" + id;
    r.status = status;
    r.host = "h";
    r.pid = 1;
    r.owner = owner;
    r.created_at = caf::make_timestamp();
    r.updated_at = r.created_at;
    b.runs.push_back(r);
    return b;
  }
  write_health sync(const store_actor& w, const std::string& run) {
    write_health out;
    self->request(w, caf::infinite, sync_atom_v, run)
      .receive([&](write_health& h) { out = h; }, [&](caf::error& e) { FAIL() << sys.render(e); });
    return out;
  }

};

// Commits in an SQLite WAL file since its last reset: frames whose "database
// size after commit" field is set, with the header's salts (the file format's
// own record, independent of the writer).
int wal_commits(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string d((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto be32 = [&](size_t o) {
    return uint32_t(uint8_t(d[o])) << 24 | uint32_t(uint8_t(d[o + 1])) << 16
           | uint32_t(uint8_t(d[o + 2])) << 8 | uint32_t(uint8_t(d[o + 3]));
  };
  if (d.size() < 32)
    return 0;
  uint32_t page = be32(8), salt1 = be32(16), salt2 = be32(20);
  int commits = 0;
  for (size_t o = 32; o + 24 + page <= d.size(); o += 24 + page) {
    if (be32(o + 8) != salt1 || be32(o + 12) != salt2)
      break;
    if (be32(o + 4) != 0)
      ++commits;
  }
  return commits;
}

} // namespace

TEST_F(StoreWriterTest, ARefusedRowCountsAgainstItsOwnRunOnly) {
  auto w = spawn_store_writer(sys, open());
  self->send(w, persist_atom_v, run_batch("a", run_status::running));
  self->send(w, persist_atom_v, run_batch("b", run_status::running));
  self->send(w, persist_atom_v, run_batch("a", run_status::succeeded));
  self->send(w, persist_atom_v, run_batch("a", run_status::running));  // illegal: refused
  auto a = sync(w, "a");
  auto b = sync(w, "b");
  EXPECT_EQ(a.failures, 1);
  EXPECT_NE(a.first_error.find("succeeded -> running"), std::string::npos) << a.first_error;
  EXPECT_EQ(b.failures, 0) << "run b was failed by run a's refused row";
  write_health all;
  self->request(w, caf::infinite, sync_atom_v).receive([&](write_health& h) { all = h; },
                                                        [&](caf::error&) {});
  EXPECT_EQ(all.failures, 1);
  self->send_exit(w, caf::exit_reason::user_shutdown);
}

TEST_F(StoreWriterTest, UnfinishedRunsGetHeartbeatsUntilTheyEnd) {
  auto w = spawn_store_writer(sys, open(), 100ms);
  self->send(w, persist_atom_v, run_batch("live", run_status::running));
  self->send(w, persist_atom_v, run_batch("done", run_status::running));
  self->send(w, persist_atom_v, run_batch("done", run_status::succeeded));
  sync(w, "live");
  auto reader = open();
  auto beat = [&](const std::string& id) {
    auto rows = reader->runs_by_prefix(id, 1);
    EXPECT_TRUE(rows && rows->size() == 1);
    return rows && !rows->empty() && rows->front().heartbeat_at ? *rows->front().heartbeat_at
                                                                : caf::timestamp{};
  };
  auto first = beat("live");
  auto done_at = beat("done");
  std::this_thread::sleep_for(350ms);
  EXPECT_GT(beat("live"), first) << "the writer refreshes an unfinished run's heartbeat";
  EXPECT_EQ(beat("done"), done_at) << "a finished run gets none";
  self->send_exit(w, caf::exit_reason::user_shutdown);
}

TEST_F(StoreWriterTest, SyncsQueuedTogetherShareOneCommit) {
  auto w = spawn_store_writer(sys, open());
  self->send(w, persist_atom_v, run_batch("warm", run_status::running));
  sync(w, "warm");
  auto before = wal_commits(dir + "/t.db-wal");
  ASSERT_GT(before, 0) << "no WAL commits seen: the check would prove nothing";
  // Another connection holds the write lock, so the writer's first commit
  // waits while 50 runs send their rows and a sync each.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/t.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  constexpr int runs = 50;
  for (int i = 0; i < runs; ++i) {
    self->send(w, persist_atom_v, run_batch("r" + std::to_string(i), run_status::running));
    self->send(w, sync_atom_v, "r" + std::to_string(i));
  }
  std::this_thread::sleep_for(200ms);
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  for (int i = 0; i < runs; ++i)
    self->receive([](write_health& h) { EXPECT_EQ(h.failures, 0) << h.first_error; },
                  caf::after(10s) >> [] { FAIL() << "a sync was not answered"; });
  // The first commit waited for the lock; the other 49 runs' rows arrived
  // meanwhile and share the next one (one commit per sync before: 50).
  auto commits = wal_commits(dir + "/t.db-wal") - before;
  EXPECT_LE(commits, 3) << commits << " commits for " << runs << " runs' syncs";
  EXPECT_GE(commits, 1);
  // Every sync answered after its rows were committed: all 50 are there.
  auto reader = open();  // (opening checkpoints the WAL: counted before)
  auto rows = reader->runs_by_prefix("r", 100);
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->size(), size_t{runs});
  self->send_exit(w, caf::exit_reason::user_shutdown);
}
