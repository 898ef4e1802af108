#include "net/worker_pool.hpp"

#include <boost/asio/post.hpp>

namespace nbdd::net {

WorkerPool::WorkerPool(unsigned threads) : pool_(threads) {}

WorkerPool::~WorkerPool() { join(); }

void WorkerPool::submit(std::function<void()> job) { boost::asio::post(pool_, std::move(job)); }

void WorkerPool::join() { pool_.join(); }

}  // namespace nbdd::net
