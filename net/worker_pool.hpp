// Executes plugin calls on -t threads. It only executes: which calls may run concurrently
// is decided by the core (thread model gating) before it emits action::CallPlugin.
#pragma once
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <utility>

#include "net/exit_watchdog.hpp"

namespace nbdd::net {

class WorkerPool {
 public:
  explicit WorkerPool(unsigned threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Any callable; posted as it is (no std::function, so no allocation of its own). While it
  // runs, the worker shows as busy in the exit watchdog's report (the job may name its call
  // more precisely with a RunningCall of its own).
  template <typename Job>
  void submit(Job&& job) {
    boost::asio::post(pool_, [job = std::forward<Job>(job)]() mutable {
      const RunningCall running("a plugin call on a worker");
      job();
    });
  }
  // Waits for every submitted job, then for the threads to end. Idempotent.
  void join();

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace nbdd::net
