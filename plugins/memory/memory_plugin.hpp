// `memory size=N [allocator=sparse|malloc[,mlock=true]]`: a RAM disk (nbdkit-memory-plugin's
// arguments). sparse, the default and what the benchmarks measure: SparseStore's
// lock-striped copy and nothing else, reads of 32 KiB and more lent from the pages themselves
// (pread_lend). malloc: FlatStore, one whole-disk array (optionally mlock'ed), no lending.
#pragma once
#include <cstdint>
#include <memory>

#include "plugins/memory/flat_store.hpp"
#include "plugins/memory/sparse_store.hpp"
#include "plugins/plugin_api.hpp"

namespace nbdd::plugin::memory {

class MemoryPlugin final : public Plugin {
 public:
  std::string_view name() const override { return "memory"; }
  std::string_view description() const override { return "sparse in-memory disk"; }
  std::string_view magic_config_key() const override { return "size"; }
  std::string config_help() const override {
    return "size=SIZE          Size of the disk (required), e.g. 1G\n"
           "allocator=sparse   Pages allocated on first write (default)\n"
           "allocator=malloc[,mlock=true]  One array for the whole disk (locked in RAM)";
  }
  ThreadModel thread_model() const override { return ThreadModel::parallel; }
  bool nonblocking() const override { return true; }  // in-memory: never blocks

  int config(std::string_view key, std::string_view value) override;
  int config_complete() override;

  int open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) override;
  int get_size(Handle& h, std::uint64_t& size) override;
  int can_write(Handle&) override { return 1; }
  int can_flush(Handle&) override { return 1; }
  int can_trim(Handle&) override { return 1; }
  int can_zero(Handle&) override { return 1; }
  int can_fast_zero(Handle&) override { return 1; }
  int can_fua(Handle&) override { return fua_native; }  // RAM: nothing to make durable
  int can_multi_conn(Handle&) override { return 1; }     // one store, seen by all
  int can_cache(Handle&) override { return cache_native; }
  int can_extents(Handle&) override { return 1; }

  int pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t flags) override;
  int pread_lend(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
                 ReadLoan& loan) override;
  void return_loan(const ReadLoan& loan) override { SparseStore::give_back(loan); }
  int pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) override;
  int flush(Handle&, std::uint32_t) override { return 0; }
  int trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;
  int zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) override;
  int extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags,
              ExtentSink& sink) override;
  int cache(Handle&, std::uint64_t, std::uint64_t, std::uint32_t) override { return 0; }

  bool has_pwrite() const override { return true; }
  bool has_flush() const override { return true; }
  bool has_trim() const override { return true; }
  bool has_zero() const override { return true; }
  bool has_extents() const override { return true; }
  bool has_cache() const override { return true; }
  bool has_pread_lend() const override { return !flat_; }  // asked after config
  std::vector<std::pair<std::string, std::string>> dump_fields() const override { return {{"mlock", "yes"}}; }

  // Pages holding data now (for tests and --verbose statistics).
  std::uint64_t allocated_bytes() const {
    if (flat_store_) return flat_store_->size();
    return store_ ? store_->allocated_pages() * SparseStore::page_bytes : 0;
  }
  // allocator=malloc,mlock=true took effect (for tests).
  bool locked_in_ram() const { return flat_store_ && flat_store_->locked(); }

 private:
  bool in_range(std::uint64_t count, std::uint64_t offset) const;
  int config_allocator(std::string_view value);

  std::uint64_t size_bytes_ = 0;
  bool size_set_ = false;
  std::unique_ptr<SparseStore> store_;     // allocator=sparse
  bool flat_ = false;                       // allocator=malloc
  bool mlock_ = false;                      // ... ,mlock=true
  std::unique_ptr<FlatStore> flat_store_;
};

}  // namespace nbdd::plugin::memory
