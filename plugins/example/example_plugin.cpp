// A minimal loadable nbdd plugin: a fixed-size RAM disk (size=N, default 1M) kept in one
// vector and guarded by one mutex. Build it against plugins/plugin_api.hpp alone and run
// `nbdd ./libnbdd-example-plugin.so size=4M`. See docs/plugins.md.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "plugins/plugin_api.hpp"

namespace {

class ExamplePlugin final : public nbdd::plugin::Plugin {
 public:
  std::string_view name() const override { return "example"; }
  std::string_view magic_config_key() const override { return "size"; }
  nbdd::plugin::ThreadModel thread_model() const override { return nbdd::plugin::ThreadModel::serialize_requests; }

  int config(std::string_view key, std::string_view value) override {
    if (key != "size") return EINVAL;
    char* end = nullptr;
    const std::string text(value);
    size_ = std::strtoull(text.c_str(), &end, 10);  // plain bytes: keep the example tiny
    return (*end == '\0' && !text.empty()) ? 0 : EINVAL;
  }
  int config_complete() override {
    disk_.assign(size_, std::byte{0});
    return 0;
  }
  int open(bool, std::string_view, std::unique_ptr<nbdd::plugin::Handle>& out) override {
    out = std::make_unique<nbdd::plugin::Handle>();
    return 0;
  }
  int get_size(nbdd::plugin::Handle&, std::uint64_t& size) override {
    size = disk_.size();
    return 0;
  }
  int pread(nbdd::plugin::Handle&, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t) override {
    if (offset > disk_.size() || buf.size() > disk_.size() - offset) return EINVAL;
    std::lock_guard lock(mutex_);  // connections may run in parallel with each other
    std::memcpy(buf.data(), disk_.data() + offset, buf.size());
    return 0;
  }
  int pwrite(nbdd::plugin::Handle&, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t) override {
    if (offset > disk_.size() || buf.size() > disk_.size() - offset) return EINVAL;
    std::lock_guard lock(mutex_);
    std::memcpy(disk_.data() + offset, buf.data(), buf.size());
    return 0;
  }
  bool has_pwrite() const override { return true; }  // makes can_write() true; zero is emulated

 private:
  std::uint64_t size_ = 1 << 20;
  std::mutex mutex_;
  std::vector<std::byte> disk_;
};

}  // namespace

NBDD_REGISTER_PLUGIN(ExamplePlugin)
