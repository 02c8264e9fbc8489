// core/checksum.cpp: see checksum.h.
#include "core/checksum.h"

#include <c10/util/Exception.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace causvid::core {
namespace {

uint32_t crc32c_table(const uint8_t* p, size_t n, uint32_t c) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t v = i;
      for (int k = 0; k < 8; ++k) v = (v & 1) ? (v >> 1) ^ 0x82F63B78u : v >> 1;
      t[i] = v;
    }
    return t;
  }();
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(const uint8_t* p, size_t n, uint32_t c) {
  uint64_t c64 = c;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = _mm_crc32_u64(c64, v);
  }
  uint32_t c32 = static_cast<uint32_t>(c64);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}
bool have_sse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
#if defined(__x86_64__)
  if (have_sse42()) return ~crc32c_sse42(p, n, c);
#endif
  return ~crc32c_table(p, n, c);
}

FileChecksum checksum_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  TORCH_CHECK(f, path, ": cannot open for checksumming: ", std::strerror(errno));
  FileChecksum out;
  std::vector<char> buf(8 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    out.crc32c = crc32c(buf.data(), n, out.crc32c);
    out.bytes += static_cast<int64_t>(n);
  }
  const bool err = std::ferror(f);
  std::fclose(f);
  TORCH_CHECK(!err, path, ": read error while checksumming");
  return out;
}

}  // namespace causvid::core
