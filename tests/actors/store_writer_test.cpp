// store_writer on a real SQLite file: health is counted per run (one run's
// refused row does not fail another), and unfinished runs get heartbeats.
#include "actors/store_writer.hpp"
#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "tests/support/real_system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <thread>

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
