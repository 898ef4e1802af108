// nbdkit's plugin thread models, strictest first. The core enforces them by when it
// emits action::CallPlugin; drivers only execute. Each model includes the ones below it.
#pragma once
#include <cstdint>

namespace nbdd::core {

enum class ThreadModel : std::uint8_t {
  serialize_connections,   // one connection between open and close at a time; its calls one by one
  serialize_all_requests,  // one plugin call at a time across all connections
  serialize_requests,      // one plugin call at a time per connection
  parallel,                // no restriction
};

const char* to_string(ThreadModel model);

}  // namespace nbdd::core
