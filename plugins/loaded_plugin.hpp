// A Plugin that forwards every callback to one created by a shared object and owns the
// dlopen handle, so the code of the inner plugin stays mapped until the inner plugin is
// destroyed (inner first, then dlclose). Internal to the loader.
#pragma once
#include <memory>

#include "plugins/plugin_api.hpp"

namespace nbdd::plugin {

class LoadedPlugin final : public Plugin {
 public:
  LoadedPlugin(void* dl_handle, Plugin* inner) : dl_handle_(dl_handle), inner_(inner) {}
  ~LoadedPlugin() override;

  std::string_view name() const override { return inner_->name(); }
  std::string_view description() const override { return inner_->description(); }
  std::string_view magic_config_key() const override { return inner_->magic_config_key(); }
  std::string config_help() const override { return inner_->config_help(); }
  std::vector<std::pair<std::string, std::string>> dump_fields() const override { return inner_->dump_fields(); }
  ThreadModel thread_model() const override { return inner_->thread_model(); }
  bool nonblocking() const override { return inner_->nonblocking(); }

  int load(Host& host) override { return inner_->load(host); }
  int config(std::string_view key, std::string_view value) override { return inner_->config(key, value); }
  int config_complete() override { return inner_->config_complete(); }
  int get_ready() override { return inner_->get_ready(); }
  void unload() override { inner_->unload(); }
  int preconnect(bool readonly) override { return inner_->preconnect(readonly); }
  int list_exports(bool readonly, ExportList& out) override { return inner_->list_exports(readonly, out); }
  std::optional<std::string> default_export(bool readonly) override { return inner_->default_export(readonly); }

  int open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) override {
    return inner_->open(readonly, export_name, out);
  }
  void close(Handle& h) override { inner_->close(h); }
  std::string export_description(Handle& h) override { return inner_->export_description(h); }
  int get_size(Handle& h, std::uint64_t& size) override { return inner_->get_size(h, size); }
  int block_size(Handle& h, std::uint32_t& minimum, std::uint32_t& preferred, std::uint32_t& maximum) override {
    return inner_->block_size(h, minimum, preferred, maximum);
  }
  int can_write(Handle& h) override { return inner_->can_write(h); }
  int can_flush(Handle& h) override { return inner_->can_flush(h); }
  int can_trim(Handle& h) override { return inner_->can_trim(h); }
  int can_zero(Handle& h) override { return inner_->can_zero(h); }
  int can_fast_zero(Handle& h) override { return inner_->can_fast_zero(h); }
  int can_fua(Handle& h) override { return inner_->can_fua(h); }
  int can_multi_conn(Handle& h) override { return inner_->can_multi_conn(h); }
  int can_cache(Handle& h) override { return inner_->can_cache(h); }
  int can_extents(Handle& h) override { return inner_->can_extents(h); }
  int is_rotational(Handle& h) override { return inner_->is_rotational(h); }

  int pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) override {
    return inner_->pread(h, buf, offset, flags);
  }
  int pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) override {
    return inner_->pwrite(h, buf, offset, flags);
  }
  int flush(Handle& h, std::uint32_t flags) override { return inner_->flush(h, flags); }
  int trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override {
    return inner_->trim(h, count, offset, flags);
  }
  int zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override {
    return inner_->zero(h, count, offset, flags);
  }
  int extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags, ExtentSink& sink) override {
    return inner_->extents(h, count, offset, flags, sink);
  }
  int cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override {
    return inner_->cache(h, count, offset, flags);
  }
  int pread_lend(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
                 ReadLoan& loan) override {
    return inner_->pread_lend(h, count, offset, flags, loan);
  }
  void return_loan(const ReadLoan& loan) override { inner_->return_loan(loan); }

  bool has_pwrite() const override { return inner_->has_pwrite(); }
  bool has_flush() const override { return inner_->has_flush(); }
  bool has_trim() const override { return inner_->has_trim(); }
  bool has_zero() const override { return inner_->has_zero(); }
  bool has_extents() const override { return inner_->has_extents(); }
  bool has_cache() const override { return inner_->has_cache(); }
  bool has_pread_lend() const override { return inner_->has_pread_lend(); }

 private:
  void* dl_handle_;
  Plugin* inner_;  // owned; deleted before dlclose
};

}  // namespace nbdd::plugin
