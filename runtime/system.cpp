#include "runtime/system.hpp"

#include "messages/errors.hpp"
#include "messages/handles.hpp"
#include "messages/run.hpp"

#include <caf/all.hpp>

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
  cfg.set("work-stealing.aggressive-poll-attempts", 10);
  cfg.set("work-stealing.moderate-poll-attempts", 5);
  cfg.set("work-stealing.moderate-sleep-duration",
          caf::timespan{std::chrono::microseconds(500)});
  cfg.set("work-stealing.relaxed-sleep-duration",
          caf::timespan{std::chrono::milliseconds(10)});
  cfg.set("logger.file-verbosity", caf::atom("quiet"));
  cfg.set("logger.console-verbosity", caf::atom("quiet"));
}

} // namespace troupe
