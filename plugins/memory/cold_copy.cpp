#include "plugins/memory/cold_copy.hpp"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>  // SSE2: part of every x86-64 CPU, so no runtime dispatch is needed
#define NBDD_HAVE_STREAMING_STORES 1
#endif

namespace nbdd::plugin::memory {

void copy_to_cold(std::byte* dst, const std::byte* src, std::size_t n) {
#ifdef NBDD_HAVE_STREAMING_STORES
  if (n >= cold_copy_bytes_min) {
    // Head: bring dst to a 16-byte boundary (streaming stores need aligned addresses).
    const std::size_t head = (16 - (reinterpret_cast<std::uintptr_t>(dst) & 15)) & 15;
    std::memcpy(dst, src, head);
    dst += head;
    src += head;
    n -= head;
    auto* out = reinterpret_cast<__m128i*>(dst);
    const auto* in = reinterpret_cast<const __m128i*>(src);
    for (; n >= 64; n -= 64, out += 4, in += 4) {  // one cache line per round
      const __m128i a = _mm_loadu_si128(in);
      const __m128i b = _mm_loadu_si128(in + 1);
      const __m128i c = _mm_loadu_si128(in + 2);
      const __m128i d = _mm_loadu_si128(in + 3);
      _mm_stream_si128(out, a);
      _mm_stream_si128(out + 1, b);
      _mm_stream_si128(out + 2, c);
      _mm_stream_si128(out + 3, d);
    }
    std::memcpy(out, in, n);  // tail, under 64 bytes
    _mm_sfence();             // streaming stores are weakly ordered: make them visible first
    return;
  }
#endif
  std::memcpy(dst, src, n);
}

}  // namespace nbdd::plugin::memory
