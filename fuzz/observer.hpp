// Which Observer the fuzz targets use: the simulator's InvariantChecker when the nbdd_sim
// library is built (NBDD_FUZZ_HAVE_SIM), otherwise none (the driver's own oracle and the
// core's NBDD_ASSERTs only).
#pragma once
#include <memory>

#include "fuzz/driver.hpp"
#if defined(NBDD_FUZZ_HAVE_SIM)
#include "fuzz/sim_observer.hpp"
#endif

namespace nbdd::fuzz {

inline std::unique_ptr<Observer> make_observer([[maybe_unused]] const Limits& limits,
                                               [[maybe_unused]] ThreadModel model,
                                               [[maybe_unused]] bool read_only,
                                               [[maybe_unused]] TlsMode tls = TlsMode::off) {
#if defined(NBDD_FUZZ_HAVE_SIM)
  return std::make_unique<SimObserver>(limits, model, read_only, tls);
#else
  return nullptr;
#endif
}

}  // namespace nbdd::fuzz
