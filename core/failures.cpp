// core/failures.cpp: see failures.h.
#include "core/failures.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "core/fs.h"
#include "core/log.h"

namespace causvid::core {
namespace {

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

// Every rank's `text`, concatenated in rank order (lengths first, then the padded bytes).
std::string all_gather_text(const DistGroup& world, const std::string& text) {
  if (world.size() == 1) return text;
  auto len = torch::tensor({int64_t(text.size())}, torch::kLong).to(world.device());
  auto lens = world.all_gather(len).cpu();
  const int64_t max_len = std::max<int64_t>(1, lens.max().item<int64_t>());
  auto buf = torch::zeros({max_len}, torch::kUInt8);
  std::copy(text.begin(), text.end(), buf.data_ptr<uint8_t>());
  auto all = world.all_gather(buf.to(world.device())).cpu().contiguous();
  std::string out;
  const auto* p = reinterpret_cast<const char*>(all.data_ptr<uint8_t>());
  for (int r = 0; r < world.size(); ++r) out.append(p + r * max_len, lens[r].item<int64_t>());
  return out;
}

}  // namespace

std::string format_failures(const std::vector<ItemFailure>& failures) {
  std::string s;
  for (const auto& f : failures) s += one_line(f.item) + "\t" + one_line(f.reason) + "\n";
  return s;
}

std::vector<ItemFailure> parse_failures(const std::string& text) {
  std::vector<ItemFailure> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto tab = line.find('\t');
    out.push_back(tab == std::string::npos
                      ? ItemFailure{line, ""}
                      : ItemFailure{line.substr(0, tab), line.substr(tab + 1)});
  }
  return out;
}

void write_failures(const std::string& path, const std::vector<ItemFailure>& failures) {
  if (failures.empty()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    return;
  }
  write_file_atomic(path, format_failures(failures));
}

std::vector<ItemFailure> read_failures(const std::string& path) {
  if (!file_exists(path)) return {};
  return parse_failures(read_file(path));
}

std::vector<ItemFailure> report_failures(const DistGroup& world, const std::string& out_dir,
                                         const std::vector<ItemFailure>& mine,
                                         const std::string& tool) {
  auto all = parse_failures(all_gather_text(world, format_failures(mine)));
  std::stable_sort(all.begin(), all.end(),
                   [](const ItemFailure& a, const ItemFailure& b) { return a.item < b.item; });
  if (world.rank() == 0) {
    const std::string path = (std::filesystem::path(out_dir) / kFailuresFile).string();
    write_failures(path, all);
    for (size_t i = 0; i < all.size() && i < 10; ++i)
      LOG_ERROR("%s: failed: %s: %s", tool, all[i].item, all[i].reason);
    if (!all.empty())
      LOG_ERROR("%s: %d items failed; the list is in %s (a rerun skips the finished items)", tool,
                all.size(), path);
  }
  return all;
}

}  // namespace causvid::core
