// The in-process fixture of the driver tests (driver_contract_test.cpp, lifecycle_test.cpp):
// a real Server on a Unix socket (or TCP where the transport matters) serving TestPlugin, a
// 1 MiB disk that counts its lifecycle calls and can be told to refuse or delay them.
#pragma once
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/server.hpp"
#include "tests/net/raw_client.hpp"

namespace nbdd::net::driver_test {
using nbdd::testing::RawClient;
namespace nbdc = nbdd::testing::nbdc;
using namespace std::chrono_literals;

constexpr std::uint64_t disk_bytes = 1 << 20;
constexpr std::uint64_t force_offset = disk_bytes - 4096;     // pread here: disconnect(true)
constexpr std::uint64_t graceful_offset = disk_bytes - 8192;  // pread here: disconnect(false)

class TestPlugin final : public plugin::Plugin {
 public:
  // Set before start: nonblocking (data calls on the I/O thread) and lending its reads.
  bool lending = false;
  std::atomic<int> read_delay_ms{0};
  std::atomic<int> opens{0}, closes{0}, unloads{0}, reads_started{0};
  std::atomic<int> loans_taken{0}, loans_out{0}, loans_out_at_unload{-1};

  // Lifecycle knobs (any time): preconnect fails with EACCES; open sleeps, then fails with
  // ENOENT for refused_name.
  std::atomic<bool> refuse_preconnect{false};
  std::atomic<int> open_delay_ms{0};
  std::string refused_name = "refused";  // set before start
  std::atomic<int> preconnects{0}, opens_started{0};

  std::string_view name() const override { return "contract"; }
  int preconnect(bool readonly) override {
    ++preconnects;
    record(std::string("preconnect readonly=") + (readonly ? "1" : "0"));
    return refuse_preconnect ? EACCES : 0;
  }
  int open(bool readonly, std::string_view export_name, std::unique_ptr<plugin::Handle>& out) override {
    ++opens_started;
    record("open '" + std::string(export_name) + "' readonly=" + (readonly ? "1" : "0"));
    if (const int ms = open_delay_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    if (export_name == refused_name) return ENOENT;
    ++opens;
    out = std::make_unique<plugin::Handle>();
    return 0;
  }
  void close(plugin::Handle&) override {
    ++closes;
    record("close");
  }
  // The lifecycle calls so far, in order (for the tests of one connection at a time).
  std::vector<std::string> calls() {
    const std::lock_guard lock(mutex_);
    return calls_;
  }
  void unload() override {
    ++unloads;
    loans_out_at_unload = loans_out.load();
  }
  bool nonblocking() const override { return lending; }
  bool has_pread_lend() const override { return lending; }
  // Lends the disk's own bytes in 64 KiB pieces; they never move, so nothing to pin.
  int pread_lend(plugin::Handle&, std::uint64_t count, std::uint64_t offset, std::uint32_t,
                 plugin::ReadLoan& loan) override {
    ++reads_started;
    if (offset == force_offset) host().disconnect(true);
    if (offset == graceful_offset) host().disconnect(false);
    for (std::uint64_t done = 0; done < count;) {
      const std::uint64_t n = std::min<std::uint64_t>(count - done, 64 * 1024);
      if (!loan.add(disk_.data() + offset + done, n, nullptr)) return ENOTSUP;  // the host takes them back
      done += n;
    }
    ++loans_taken;
    ++loans_out;
    return 0;
  }
  void return_loan(const plugin::ReadLoan&) override { --loans_out; }
  int get_size(plugin::Handle&, std::uint64_t& size) override {
    size = disk_bytes;
    return 0;
  }
  int pread(plugin::Handle&, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t) override {
    ++reads_started;
    if (offset == force_offset) host().disconnect(true);
    if (offset == graceful_offset) host().disconnect(false);
    if (const int ms = read_delay_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    const std::lock_guard lock(mutex_);
    std::memcpy(buf.data(), disk_.data() + offset, buf.size());
    return 0;
  }
  int pwrite(plugin::Handle&, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t) override {
    const std::lock_guard lock(mutex_);
    std::memcpy(disk_.data() + offset, buf.data(), buf.size());
    return 0;
  }
  int flush(plugin::Handle&, std::uint32_t) override { return 0; }
  bool has_pwrite() const override { return true; }
  bool has_flush() const override { return true; }

 private:
  void record(std::string call) {
    const std::lock_guard lock(mutex_);
    calls_.push_back(std::move(call));
  }
  std::mutex mutex_;
  std::vector<std::string> calls_;
  std::vector<std::byte> disk_ = std::vector<std::byte>(disk_bytes);
};

class DriverContract : public ::testing::Test {
 protected:
  // lending: the plugin is nonblocking (its data calls run on the I/O thread, as the memory
  // plugin's do) and lends its reads. tcp: listen on 127.0.0.1 instead of a Unix socket.
  // tls: credentials for STARTTLS (config.tls says the mode); must outlive the server.
  void start(ServerConfig config = {}, bool lending = false, bool tcp = false, bool read_only = false,
             TlsContext* tls = nullptr) {
    char templ[] = "/tmp/nbdd-net-test-XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    dir_ = templ;
    socket_path_ = dir_ + "/sock";
    config.worker_threads = 4;
    // net/CMakeLists.txt runs these tests a second time on epoll. Otherwise TCP tests run on
    // the ring too (--io-uring=on), unless a test checks the default's choice.
    if (epoll_rerun())
      config.io_uring = IoUringUse::off;
    else if (config.io_uring == IoUringUse::unix_only && !keep_io_uring_default_)
      config.io_uring = IoUringUse::on;
    expect_io_uring_ = io_uring_wanted(config.io_uring, !tcp) && io_uring_available();
    server_ = std::make_unique<Server>(config);
    auto p = std::make_unique<TestPlugin>();
    p->lending = lending;
    plugin_ = p.get();
    host_ = std::make_unique<plugin::PluginHost>(std::move(p), server_->hooks());
    ASSERT_EQ(host_->start({}), "");
    server_->set_plugin(*host_, core::ThreadModel::parallel, read_only);
    if (tls != nullptr) server_->set_tls(tls);
    if (tcp) {
      tcp_port_ = nbdd::testing::free_tcp_port();
      ASSERT_EQ(server_->listen_tcp("127.0.0.1", std::to_string(tcp_port_)), "");
    } else {
      ASSERT_EQ(server_->listen_unix(socket_path_), "");
    }
    result_ = std::async(std::launch::async, [this] { return server_->run(); });
  }
  // Waits for run() to return; false on timeout.
  bool stopped_within(std::chrono::milliseconds limit) {
    return result_.valid() && result_.wait_for(limit) == std::future_status::ready;
  }
  void TearDown() override {
    if (server_ && result_.valid()) {
      server_->request_shutdown();
      server_->request_shutdown();  // force whatever is left
      EXPECT_TRUE(stopped_within(20s));
      if (result_.valid()) result_.get();
    }
    host_.reset();
    server_.reset();
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  RawClient connect_ready() {
    RawClient c;
    EXPECT_TRUE(tcp_port_ != 0 ? c.connect_tcp(tcp_port_) : c.connect_unix(socket_path_));
    EXPECT_EQ(c.handshake(), disk_bytes);
    // The shards are set up once a connection was served: the run is on the transport asked for.
    EXPECT_EQ(server_->uses_io_uring(), expect_io_uring_);
    return c;
  }
  // The second run of these tests (net/CMakeLists.txt), with every session on epoll.
  static bool epoll_rerun() {
    const char* uring = std::getenv("NBDD_TEST_IO_URING");
    return uring != nullptr && std::string(uring) == "off";
  }
  // Whether this kernel lets nbdd use io_uring (the server falls back to epoll otherwise).
  static bool io_uring_available() {
    static const bool available = [] {
      boost::asio::io_context probe{1};
      std::string why;
      return UringLoop::create(probe, why) != nullptr;
    }();
    return available;
  }
  bool expect_io_uring_ = false;
  bool keep_io_uring_default_ = false;  // set before start(): --io-uring=unix stays as given

  std::string dir_, socket_path_;
  std::uint16_t tcp_port_ = 0;
  std::unique_ptr<Server> server_;
  std::unique_ptr<plugin::PluginHost> host_;
  TestPlugin* plugin_ = nullptr;
  std::future<int> result_;
};

template <class F>
inline bool eventually(F condition) {
  for (int i = 0; i < 3000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

inline std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 7);
  return v;
}

}  // namespace nbdd::net::driver_test
