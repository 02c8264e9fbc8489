// core/utf8.cpp: see utf8.h.
#include "core/utf8.h"

#include <torch/torch.h>

namespace causvid::core {

bool is_valid_utf8(const std::string& s, size_t* bad_offset) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = b[i];
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    }
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (b[i + k] & 0xC0) == 0x80;
      cp = (cp << 6) | (b[i + k] & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (!ok) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

void check_utf8(const std::string& text, const std::string& source) {
  size_t bad = 0;
  if (is_valid_utf8(text, &bad)) return;
  const size_t line_start = text.rfind('\n', bad == 0 ? 0 : bad - 1);
  const size_t begin = line_start == std::string::npos || bad == 0 ? 0 : line_start + 1;
  int64_t line = 1;
  for (size_t i = 0; i < begin; ++i) line += text[i] == '\n';
  TORCH_CHECK(false, source, ":", line, ": invalid UTF-8 at byte ", bad - begin, " of the line");
}

}  // namespace causvid::core
