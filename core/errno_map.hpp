// The one place a plugin errno becomes an NBD error (cf. nbdkit's nbd_errno()).
#pragma once
#include <cstdint>

#include "core/protocol_constants.hpp"

namespace nbdd::core {

// cmd_flags are the request's NBD_CMD_FLAG_* bits: ENOTSUP is only reported as such for a
// FAST_ZERO request and EOVERFLOW only for a DF read; otherwise both become EINVAL.
nbd::Error errno_to_nbd(int err, std::uint16_t cmd_flags);

}  // namespace nbdd::core
