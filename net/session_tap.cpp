#include "net/session_tap.hpp"

namespace nbdd::net {
namespace {
// Written once before any session thread exists, read-only afterwards: no atomics needed.
SessionTap* installed_tap = nullptr;
}  // namespace

void install_session_tap(SessionTap* tap) { installed_tap = tap; }
SessionTap* session_tap() { return installed_tap; }

}  // namespace nbdd::net
