#include "runtime/system.hpp"

#include "messages/errors.hpp"
#include "messages/gpu_broker.hpp"
#include "messages/handles.hpp"
#include "messages/node.hpp"
#include "messages/run.hpp"
#include "messages/store.hpp"

#include <caf/all.hpp>

#include <cstdlib>
#include <string>

namespace troupe {

void register_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::troupe>();
  cfg.add_message_types<caf::id_block::troupe_handles>();
  cfg.add_error_category(caf::atom("troupe"),
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           return "troupe::" + to_string(static_cast<errc>(code))
                                  + (ctx.empty() ? "" : " " + caf::to_string(ctx));
                         });
}

void configure_scheduler(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", 2);
  const char* policy = std::getenv("TROUPE_SCHEDULER");
  std::string p = policy != nullptr ? policy : "sharing";
  if (p == "stealing") {
    // Tuned work stealing: idle CPU ~1 %, but a worker in relaxed sleep
    // takes up to relaxed-sleep-duration to notice a message from a thread
    // outside CAF (the process reaper), which costs every stage.
    cfg.set("work-stealing.aggressive-poll-attempts", 10);
    cfg.set("work-stealing.moderate-poll-attempts", 5);
    cfg.set("work-stealing.moderate-sleep-duration",
            caf::timespan{std::chrono::microseconds(500)});
    cfg.set("work-stealing.relaxed-sleep-duration",
            caf::timespan{std::chrono::milliseconds(10)});
  } else {
    cfg.set("scheduler.policy", caf::atom("sharing"));
  }
  cfg.set("logger.file-verbosity", caf::atom("quiet"));
  cfg.set("logger.console-verbosity", caf::atom("quiet"));
}

} // namespace troupe
