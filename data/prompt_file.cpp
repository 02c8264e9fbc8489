// data/prompt_file.cpp: see prompt_file.h.
#include "data/prompt_file.h"

#include <c10/util/Exception.h>

#include "core/fs.h"
#include "core/utf8.h"
#include "models/t5/tokenizer.h"

namespace causvid::data {

std::vector<std::string> parse_prompt_text(const std::string& text, const std::string& source) {
  const size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // byte order mark
  core::check_utf8(text, source);  // names the line, as for configs and schedules
  std::vector<std::string> out;
  size_t pos = start;
  int64_t line_no = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string::npos ? text.size() : nl;
    std::string line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    TORCH_CHECK(!models::clean_prompt(line).empty(), source, ":", line_no,
                ": empty prompt line (remove it, or write a prompt)");
    out.push_back(std::move(line));
  }
  TORCH_CHECK(!out.empty(), source, ": no prompts in the file");
  return out;
}

std::vector<std::string> read_prompt_file(const std::string& path) {
  TORCH_CHECK(core::file_exists(path), path, ": prompt file not found");
  return parse_prompt_text(core::read_file(path), path);
}

}  // namespace causvid::data
