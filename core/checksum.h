// core/checksum.h: CRC-32C (Castagnoli), the checksum of checkpoint files and of TensorBoard
// records. SSE4.2's crc32 instruction when the CPU has it (about 10x the table), else a table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace causvid::core {

// CRC-32C of n bytes, continuing from `crc` (the value a previous call returned; 0 to start).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

struct FileChecksum {
  int64_t bytes = 0;
  uint32_t crc32c = 0;
};
// Streams the file; throws naming it when it cannot be read.
FileChecksum checksum_file(const std::string& path);

}  // namespace causvid::core
