// Test support: a real actor system (the production scheduler and type
// registration), a scoped actor, an io_pool that outlives the system, and a
// fresh folder removed afterwards; for tests of real actors with real
// processes and files.
#pragma once

#include "adapters/artifacts/io_pool.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include <unistd.h>

namespace troupe::test {

struct real_system_test : ::testing::Test {
  static caf::actor_system_config& prepare(caf::actor_system_config& cfg) {
    register_types(cfg);
    configure_scheduler(cfg);
    return cfg;
  }
  real_system_test() : sys(prepare(cfg)), self(sys) {
    std::string tmpl = "/tmp/troupe-test-XXXXXX";
    dir = ::mkdtemp(tmpl.data());
  }
  ~real_system_test() override {
    for (auto& a : helpers)
      self->send_exit(a, caf::exit_reason::user_shutdown);
    std::system(("rm -rf '" + dir + "'").c_str());
  }
  /// Shut down at the end of the test.
  template <class Handle>
  Handle keep(Handle h) {
    helpers.push_back(caf::actor_cast<caf::actor>(h));
    return h;
  }

  std::shared_ptr<io_pool> pool = std::make_shared<io_pool>(2);  // outlives sys
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scoped_actor self;
  std::string dir;
  std::vector<caf::actor> helpers;
};

} // namespace troupe::test
