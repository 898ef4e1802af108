#include "plugins/memory/memory_plugin.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "tests/plugins/host_harness.hpp"

namespace nbdd::test {
namespace {

using plugin::memory::MemoryPlugin;
constexpr std::uint64_t page = plugin::memory::SparseStore::page_bytes;
constexpr std::uint32_t hole_zero = plugin::extent_hole | plugin::extent_zero;

struct MemoryTest : ::testing::Test {
  void start(const std::string& size) {
    h = std::make_unique<HostHarness>(std::make_unique<MemoryPlugin>());
    ASSERT_EQ(h->start({size}), "");
    ASSERT_EQ(h->open(conn), 0);
  }
  MemoryPlugin& mem() { return h->plugin_as<MemoryPlugin>(); }
  std::unique_ptr<HostHarness> h;
  ConnectionPluginState conn;
};

TEST_F(MemoryTest, LargeEmptyDiskCostsNothingAndWritesAllocateOnePage) {
  start("2T");
  EXPECT_EQ(mem().allocated_bytes(), 0u);
  const auto data = bytes_of("hello, far away");
  const std::uint64_t far = 1ull << 40;
  ASSERT_EQ(h->pwrite(conn, data, far + 100), 0);
  EXPECT_EQ(mem().allocated_bytes(), page);
  std::vector<std::byte> back(data.size());
  ASSERT_EQ(h->pread(conn, back, far + 100), 0);
  EXPECT_EQ(back, data);
  std::vector<std::byte> big(4 << 20, std::byte{1});
  ASSERT_EQ(h->pread(conn, big, 5ull << 30), 0);  // unallocated: zeroes, no allocation
  EXPECT_EQ(big, std::vector<std::byte>(4 << 20));
  EXPECT_EQ(mem().allocated_bytes(), page);
}

TEST_F(MemoryTest, WriteAcrossPagesReadsBackExactly) {
  start("1M");
  std::vector<std::byte> data(3 * page);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 7 + 3);
  ASSERT_EQ(h->pwrite(conn, data, 1000), 0);
  std::vector<std::byte> back(data.size() + 2000);
  ASSERT_EQ(h->pread(conn, back, 0), 0);
  EXPECT_EQ(back[999], std::byte{0});
  EXPECT_TRUE(std::equal(data.begin(), data.end(), back.begin() + 1000));
  EXPECT_EQ(mem().allocated_bytes(), 4 * page);
}

TEST_F(MemoryTest, TrimAndZeroReleaseWholePagesAndZeroPartialOnes) {
  start("1M");
  ASSERT_EQ(h->pwrite(conn, filled(4 * page, 0x5a), 0), 0);
  EXPECT_EQ(mem().allocated_bytes(), 4 * page);
  ASSERT_EQ(h->trim(conn, 2 * page, 0), 0);
  EXPECT_EQ(mem().allocated_bytes(), 2 * page);
  ASSERT_EQ(h->zero(conn, 100, 2 * page + 10, plugin::flag::may_trim), 0);
  EXPECT_EQ(mem().allocated_bytes(), 2 * page);
  std::vector<std::byte> back(4 * page);
  ASSERT_EQ(h->pread(conn, back, 0), 0);
  for (std::size_t i = 0; i < back.size(); ++i) {
    const bool zeroed = i < 2 * page || (i >= 2 * page + 10 && i < 2 * page + 110);
    ASSERT_EQ(back[i], zeroed ? std::byte{0} : std::byte{0x5a}) << i;
  }
  ASSERT_EQ(h->zero(conn, 2 * page, 2 * page, plugin::flag::fast_zero), 0);
  EXPECT_EQ(mem().allocated_bytes(), 0u);
}

TEST_F(MemoryTest, ExtentsReportHolesAndData) {
  start("1M");
  ASSERT_EQ(h->pwrite(conn, filled(100, 1), 2 * page + 5), 0);
  std::vector<core::Extent> out;
  ASSERT_EQ(h->extents(conn, (1 << 20) - 10, 10, 0, out), 0);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].offset, 10u);
  EXPECT_EQ(out[0].length, 2 * page - 10);
  EXPECT_EQ(out[0].type, hole_zero);
  EXPECT_EQ(out[1].offset, 2 * page);
  EXPECT_EQ(out[1].length, page);
  EXPECT_EQ(out[1].type, 0u);
  EXPECT_EQ(out[2].offset, 3 * page);
  EXPECT_EQ(out[2].length, (1 << 20) - 3 * page);
  EXPECT_EQ(out[2].type, hole_zero);
}

TEST_F(MemoryTest, ExtentsOfAHugeEmptyDiskAreOneHole) {
  start("1P");
  std::vector<core::Extent> out;
  ASSERT_EQ(h->extents(conn, 0xffffffffu, (1ull << 49) + 3, 0, out), 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].length, 0xffffffffu);
  EXPECT_EQ(out[0].type, hole_zero);
}

TEST_F(MemoryTest, BadOrMissingSizeFailsAtStart) {
  HostHarness bad(std::make_unique<MemoryPlugin>());
  EXPECT_NE(bad.start({"size=12Q"}).find("12Q"), std::string::npos);
  HostHarness missing(std::make_unique<MemoryPlugin>());
  EXPECT_NE(missing.start({}).find("size"), std::string::npos);
}

TEST_F(MemoryTest, OpenAdvertisesEverything) {
  start("1G");
  core::ExportInfo info;
  ASSERT_EQ(h->probe(info), 0);
  const auto& caps = info.caps;
  EXPECT_EQ(info.size_bytes, 1u << 30);
  EXPECT_TRUE(caps.can_write && caps.can_flush && caps.can_trim && caps.can_zero && caps.can_fast_zero &&
              caps.can_fua && caps.can_multi_conn && caps.can_cache && caps.can_extents);
  EXPECT_EQ(h->host->plugin().thread_model(), plugin::ThreadModel::parallel);
}

// As nbdkit's memory plugin: every export name is the one disk, so what a client writes
// through one name another reads through any other.
TEST_F(MemoryTest, EveryExportNameIsTheSameDisk) {
  start("1M");
  EXPECT_EQ(h->listed_names(), std::vector<std::string>{""});
  ConnectionPluginState writer, reader;
  core::ExportInfo info;
  ASSERT_EQ(h->open(writer, false, "foo", &info), 0);
  EXPECT_EQ(info.name, "foo");
  EXPECT_EQ(info.size_bytes, 1u << 20);
  ASSERT_EQ(h->pwrite(writer, bytes_of("shared"), 4096), 0);
  ASSERT_EQ(h->open(reader, false, "", &info), 0);
  EXPECT_EQ(info.name, "");
  std::vector<std::byte> back(6);
  ASSERT_EQ(h->pread(reader, back, 4096), 0);
  EXPECT_EQ(back, bytes_of("shared"));
  EXPECT_EQ(h->close(writer), 0);
  EXPECT_EQ(h->close(reader), 0);
}

// Eight connections hammer the store at once (run under TSan in CI): each owns a region
// it writes and verifies, and all share one region where 4 KiB blocks are overwritten by
// everyone; every shared block must end up holding exactly one writer's bytes.
TEST_F(MemoryTest, ConcurrentWritersKeepDataIntact) {
  start("64M");
  constexpr int thread_count = 8;
  constexpr std::uint64_t region = 1 << 20;
  constexpr std::uint64_t shared_base = 32 << 20;
  constexpr std::size_t block = 4096;
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&, t] {
      ConnectionPluginState c;
      c.id = t;
      ASSERT_EQ(h->open(c), 0);
      std::vector<std::byte> buf(block), back(block);
      for (int i = 0; i < 64; ++i) {
        const std::uint64_t own = t * region + (i * 7919 % (region / block)) * block + (i % 3);
        for (std::size_t k = 0; k < block; ++k) buf[k] = static_cast<std::byte>(t * 31 + i + k);
        ASSERT_EQ(h->pwrite(c, buf, own), 0);
        ASSERT_EQ(h->pread(c, back, own), 0);
        ASSERT_EQ(back, buf);
        std::vector<std::byte> mine(block, static_cast<std::byte>(t + 1));
        ASSERT_EQ(h->pwrite(c, mine, shared_base + (i % 16) * block), 0);
        if (i % 8 == 7) {
          ASSERT_EQ(h->trim(c, page, shared_base + page), 0);
        }
      }
      ASSERT_EQ(h->close(c), 0);
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::byte> back(block);
  for (int b = 0; b < 16; ++b) {
    ASSERT_EQ(h->pread(conn, back, shared_base + b * block), 0);
    for (std::size_t k = 1; k < block; ++k) ASSERT_EQ(back[k], back[0]) << "block " << b;
    EXPECT_LE(static_cast<int>(back[0]), thread_count);
  }
}

TEST_F(MemoryTest, LentReadMatchesACopiedReadAcrossPagesAndHoles) {
  start("1M");
  std::vector<std::byte> data(3 * page);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 13 + 1);
  ASSERT_EQ(h->pwrite(conn, data, 1000), 0);
  ASSERT_EQ(h->trim(conn, page, 2 * page), 0);  // a hole in the middle of the data
  std::vector<std::byte> copied(5 * page + 77), unused(copied.size());
  ASSERT_EQ(h->pread(conn, copied, 500), 0);
  plugin::ReadLoan loan;
  ASSERT_EQ(h->lend(conn, unused, 500, loan), 0);
  EXPECT_EQ(HostHarness::flatten(loan), copied);
  EXPECT_EQ(loan.pieces().size(), 6u);  // 500 bytes in, 5 pages and 77 bytes: six page pieces
  EXPECT_EQ(unused, std::vector<std::byte>(unused.size()));  // the buffer is not touched
  h->host->return_loan(loan);
  EXPECT_TRUE(loan.empty());
}

TEST_F(MemoryTest, LentPageOutlivesItsTrimUntilTheLoanComesBack) {
  start("1M");
  ASSERT_EQ(h->pwrite(conn, filled(2 * page, 0x5a), 0), 0);
  std::vector<std::byte> unused(2 * page);
  plugin::ReadLoan loan;
  ASSERT_EQ(h->lend(conn, unused, 0, loan), 0);
  ASSERT_EQ(h->trim(conn, 2 * page, 0), 0);
  EXPECT_EQ(mem().allocated_bytes(), 0u);  // gone from the disk...
  EXPECT_EQ(HostHarness::flatten(loan), filled(2 * page, 0x5a));  // ...not from the loan (ASan: no use after free)
  std::vector<std::byte> back(2 * page, std::byte{1});
  ASSERT_EQ(h->pread(conn, back, 0), 0);
  EXPECT_EQ(back, std::vector<std::byte>(2 * page));
  h->host->return_loan(loan);  // frees both pages (ASan's leak check sees it)
}

TEST_F(MemoryTest, ReadNeedingTooManyPiecesIsNotLentAndStillReads) {
  start("16M");
  std::vector<std::byte> buf((plugin::ReadLoan::pieces_max + 1) * page);
  plugin::ReadLoan loan;
  EXPECT_EQ(h->lend(conn, buf, 0, loan), ENOTSUP);
  EXPECT_TRUE(loan.empty());
  EXPECT_EQ(h->pread(conn, buf, 0), 0);
  std::vector<std::byte> just_fits(plugin::ReadLoan::pieces_max * page);
  EXPECT_EQ(h->lend(conn, just_fits, 0, loan), 0);
  EXPECT_EQ(loan.pieces().size(), plugin::ReadLoan::pieces_max);
  h->host->return_loan(loan);
}

// Loans race with trims and rewrites (run under TSan in CI). One mutator drops each page and
// writes a fresh one filled with a new byte, so no page is written while it may be lent;
// the readers' lent pieces must each hold one value, whatever the interleaving.
TEST_F(MemoryTest, ConcurrentLoansAndTrimsNeverFreeALentPage) {
  start("4M");
  constexpr int pages = 8;
  std::atomic<bool> stop{false};
  std::thread mutator([&] {
    ConnectionPluginState c;
    c.id = 100;
    ASSERT_EQ(h->open(c), 0);
    for (int round = 0; round < 400; ++round) {
      const std::uint64_t at = (round % pages) * page;
      ASSERT_EQ(h->trim(c, page, at), 0);
      ASSERT_EQ(h->pwrite(c, filled(page, static_cast<unsigned char>(round)), at), 0);
    }
    stop = true;
    ASSERT_EQ(h->close(c), 0);
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      ConnectionPluginState c;
      c.id = t;
      ASSERT_EQ(h->open(c), 0);
      std::vector<std::byte> unused(2 * page);
      for (int i = 0; !stop || i < 50; ++i) {
        plugin::ReadLoan loan;
        ASSERT_EQ(h->lend(c, unused, ((i + t) % (pages - 1)) * page, loan), 0);
        for (const auto& piece : loan.pieces())
          for (std::size_t k = 1; k < piece.size; ++k) ASSERT_EQ(piece.data[k], piece.data[0]);
        h->host->return_loan(loan);
      }
      ASSERT_EQ(h->close(c), 0);
    });
  }
  mutator.join();
  for (auto& r : readers) r.join();
}

// allocator= (nbdkit-memory-plugin's): sparse and malloc[,mlock=true] work; zstd and
// anything else are refused at start-up, naming the value.
TEST(MemoryAllocator, MallocServesTheSameBytesWithoutSparseness) {
  for (const char* allocator : {"allocator=malloc", "allocator=malloc,mlock=true", "allocator=malloc,mlock=false"}) {
    HostHarness h(std::make_unique<MemoryPlugin>());
    ASSERT_EQ(h.start({"1M", allocator}), "") << allocator;
    auto& mem = h.plugin_as<MemoryPlugin>();
    EXPECT_EQ(mem.locked_in_ram(), std::string(allocator).find("mlock=true") != std::string::npos) << allocator;
    EXPECT_FALSE(mem.has_pread_lend());
    ConnectionPluginState c;
    ASSERT_EQ(h.open(c), 0);
    std::vector<std::byte> data(3 * page + 5);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 13 + 1);
    ASSERT_EQ(h.pwrite(c, data, 777), 0);
    std::vector<std::byte> back(data.size());
    ASSERT_EQ(h.pread(c, back, 777), 0);
    EXPECT_EQ(back, data);
    ASSERT_EQ(h.zero(c, 100, 800), 0);
    ASSERT_EQ(h.trim(c, 10, 1000), 0);
    ASSERT_EQ(h.pread(c, back, 777), 0);
    for (std::size_t i = 0; i < back.size(); ++i) {
      const std::uint64_t at = 777 + i;
      const bool zeroed = (at >= 800 && at < 900) || (at >= 1000 && at < 1010);
      ASSERT_EQ(back[i], zeroed ? std::byte{0} : data[i]) << allocator << " at " << at;
    }
    std::vector<core::Extent> out;
    ASSERT_EQ(h.extents(c, 1 << 20, 0, 0, out), 0);
    ASSERT_EQ(out.size(), 1u);  // all data, as nbdkit's malloc allocator
    EXPECT_EQ(out[0].type, 0u);
    EXPECT_EQ(out[0].length, 1u << 20);
    ASSERT_EQ(h.close(c), 0);
  }
}

TEST(MemoryAllocator, SparseIsTheDefaultAndRefusalsNameTheValue) {
  HostHarness sparse(std::make_unique<MemoryPlugin>());
  ASSERT_EQ(sparse.start({"1M", "allocator=sparse"}), "");
  EXPECT_TRUE(sparse.plugin_as<MemoryPlugin>().has_pread_lend());
  EXPECT_FALSE(sparse.plugin_as<MemoryPlugin>().locked_in_ram());
  const std::pair<const char*, const char*> refused[] = {
      {"allocator=zstd", "zstd"},
      {"allocator=foo", "foo"},
      {"allocator=sparse,mlock=true", "mlock=true"},
      {"allocator=malloc,mlock=maybe", "mlock"},
      {"allocator=malloc,bar=1", "bar=1"},
  };
  for (const auto& [arg, mentions] : refused) {
    HostHarness h(std::make_unique<MemoryPlugin>());
    const std::string error = h.start({"1M", arg});
    EXPECT_NE(error.find(mentions), std::string::npos) << arg << ": " << error;
  }
}

// Concurrent writers and readers of the same regions: the striped locks keep every read
// whole (one writer's bytes or another's, never a mix within a region); TSan checks races.
TEST(MemoryAllocator, MallocUnderConcurrentWriters) {
  HostHarness h(std::make_unique<MemoryPlugin>());
  ASSERT_EQ(h.start({"1M", "allocator=malloc"}), "");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      ConnectionPluginState c;
      c.id = t;
      ASSERT_EQ(h.open(c), 0);
      std::vector<std::byte> back(page);
      for (int i = 0; i < 200; ++i) {
        ASSERT_EQ(h.pwrite(c, filled(page, static_cast<unsigned char>(t + 1)), page * (i % 4)), 0);
        ASSERT_EQ(h.pread(c, back, page * ((i + 1) % 4)), 0);
        for (std::size_t k = 1; k < back.size(); ++k) ASSERT_EQ(back[k], back[0]);
      }
      ASSERT_EQ(h.close(c), 0);
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace nbdd::test
