// The second type-ID block: typed handles that travel inside messages. Their
// aliases need the atoms of the first block, hence a block of their own.
#pragma once

#include "messages/job_worker.hpp"
#include "messages/resource_sampler.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(troupe_handles, caf::id_block::troupe::end)
  CAF_ADD_TYPE_ID(troupe_handles, (troupe::sample_sink_actor))
  CAF_ADD_TYPE_ID(troupe_handles, (troupe::job_listener_actor))
CAF_END_TYPE_ID_BLOCK(troupe_handles)
