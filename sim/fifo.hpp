// sim::Fifo: the simulator's short queues (segments in flight, options awaiting their reply)
// use core's vector-backed FIFO (core/vector_fifo.hpp): nothing allocated until the first
// push, the same storage reused once drained.
#pragma once
#include "core/vector_fifo.hpp"

namespace nbdd::sim {

template <typename T>
using Fifo = core::VectorFifo<T>;

}  // namespace nbdd::sim
