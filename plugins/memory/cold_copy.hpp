// Copying a large write into the store's pages. The pages are usually cold (a 1 GiB disk
// does not fit any cache), so a plain memcpy first reads every destination line into the
// cache (read-for-ownership) only to overwrite it, and evicts useful lines on the way.
// Non-temporal (streaming) stores skip that read: on the bench machine a 64 KiB-page copy
// into 1 GiB of cold pages runs at 17 GB/s instead of 10-11 GB/s (bench/README.md).
#pragma once
#include <cstddef>

namespace nbdd::plugin::memory {

// Below this a copy is likely to be read back soon (small random writes hit the same pages)
// and the fence would cost more than the saved reads.
inline constexpr std::size_t cold_copy_bytes_min = 16 * 1024;

// memcpy semantics (no overlap). Streams when the CPU allows and n >= cold_copy_bytes_min;
// the stores are fenced before returning, so the usual lock release publishes them.
void copy_to_cold(std::byte* dst, const std::byte* src, std::size_t n);

}  // namespace nbdd::plugin::memory
