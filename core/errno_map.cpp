#include "core/errno_map.hpp"

#include <cerrno>

namespace nbdd::core {

nbd::Error errno_to_nbd(int err, std::uint16_t cmd_flags) {
  switch (err) {
    case 0: return nbd::Error::ok;
    case EROFS:
    case EPERM: return nbd::Error::eperm;
    case EIO: return nbd::Error::eio;
    case ENOMEM: return nbd::Error::enomem;
#ifdef EDQUOT
    case EDQUOT:
#endif
    case EFBIG:
    case ENOSPC: return nbd::Error::enospc;
#ifdef ESHUTDOWN
    case ESHUTDOWN: return nbd::Error::eshutdown;
#endif
#if defined(EOPNOTSUPP) && EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP:
#endif
    case ENOTSUP:
      return (cmd_flags & nbd::cmd_flag_fast_zero) ? nbd::Error::enotsup : nbd::Error::einval;
    case EOVERFLOW:
      return (cmd_flags & nbd::cmd_flag_df) ? nbd::Error::eoverflow : nbd::Error::einval;
    case EINVAL:
    default: return nbd::Error::einval;
  }
}

}  // namespace nbdd::core
