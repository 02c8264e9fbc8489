// core/utf8.h: UTF-8 validation for the text files we read (configs, prompt files, prompt
// schedules): well-formed sequences only (no overlongs, no surrogates, <= U+10FFFF).
#pragma once

#include <cstddef>
#include <string>

namespace causvid::core {

// True if `s` is well-formed UTF-8; on failure *bad_offset = the first bad byte.
bool is_valid_utf8(const std::string& s, size_t* bad_offset = nullptr);

// Throws "<source>:<line>: invalid UTF-8 at byte <n> of the line" for the first bad byte of
// `text` (lines counted from 1), or returns.
void check_utf8(const std::string& text, const std::string& source);

}  // namespace causvid::core
