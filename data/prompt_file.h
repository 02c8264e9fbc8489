// data/prompt_file.h: prompt .txt files, one prompt per line (what `generate --prompts`,
// `eval`, `embed-prompts` and the prompt datasets read). A parser of outside bytes: fuzzed
// by fuzz/text_harnesses.cpp.
#pragma once

#include <string>
#include <vector>

namespace causvid::data {

// One prompt per line, UTF-8 ('\n' or "\r\n", a leading byte order mark is dropped). Invalid
// UTF-8 or an empty (or blank) line is an error naming `source` and the 1-based line. A
// missing trailing newline is fine.
std::vector<std::string> parse_prompt_text(const std::string& text, const std::string& source);
std::vector<std::string> read_prompt_file(const std::string& path);

}  // namespace causvid::data
