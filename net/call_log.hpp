// -v: one log line per plugin call, with its arguments and its result, in the words of
// nbdkit's debug output ("pread count=4096 offset=0", "zero count=... may_trim=1 fua=0
// fast=0"), so a log of nbdd reads like one of nbdkit:
//   "memory: pread count=4096 offset=0 -> 0"
//   "file: pwrite count=512 offset=1024 fua=1 -> error EIO"
//   "sh: open readonly=0 exportname=\"\" -> 0 size=1048576"
// Only called when verbose logging is on: it allocates.
#pragma once
#include <string>
#include <string_view>

#include "core/plugin_call.hpp"

namespace nbdd::net {

// `err`: the call's result as in input::PluginDone (0 or an errno value).
std::string describe_plugin_call(std::string_view plugin_name, const core::PluginCall& call, int err);

// "EIO", "ENOSPC", ... or "errno N" for a value without a name here.
std::string errno_name(int err);

}  // namespace nbdd::net
