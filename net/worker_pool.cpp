#include "net/worker_pool.hpp"

namespace nbdd::net {

WorkerPool::WorkerPool(unsigned threads) : pool_(threads) {}

WorkerPool::~WorkerPool() { join(); }

void WorkerPool::join() { pool_.join(); }

}  // namespace nbdd::net
