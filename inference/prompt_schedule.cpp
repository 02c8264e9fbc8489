// inference/prompt_schedule.cpp: the prompt schedule of generate (generate.h): parsing
// "time: prompt" lines and resolving them to latent blocks. Split from generate.cpp.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/fs.h"
#include "core/utf8.h"
#include "inference/generate.h"

namespace causvid::inference {

// ------------------------------------------------------------------ prompt schedule

namespace {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

}  // namespace

std::vector<ScheduleEntry> parse_prompt_schedule(const std::string& text,
                                                 const std::string& source) {
  core::check_utf8(text, source);  // as prompt files
  std::vector<ScheduleEntry> out;
  std::istringstream in(text);
  std::string raw;
  int line = 0;
  while (std::getline(in, raw)) {
    ++line;
    const std::string s = trim(raw);
    if (s.empty() || s[0] == '#') continue;
    const size_t colon = s.find(':');
    TORCH_CHECK(colon != std::string::npos, source, ":", line, ": unparsable schedule line '", s,
                "', want '<start block>: <prompt>' or '<seconds>s: <prompt>'");
    std::string start = trim(s.substr(0, colon));
    ScheduleEntry e;
    e.line = line;
    e.prompt = trim(s.substr(colon + 1));
    if (!start.empty() && (start.back() == 's' || start.back() == 'S')) {
      e.seconds = true;
      start.pop_back();
    }
    size_t used = 0;
    bool ok = !start.empty();
    try {
      if (ok) e.start = e.seconds ? std::stod(start, &used) : double(std::stoll(start, &used));
    } catch (const std::exception&) {
      ok = false;
    }
    TORCH_CHECK(ok && used == start.size() && std::isfinite(e.start), source, ":", line,
                ": unparsable start '", trim(s.substr(0, colon)),
                "', want a block index (e.g. 4) or seconds (e.g. 2.5s)");
    TORCH_CHECK(e.start >= 0, source, ":", line, ": start ", e.start, " is negative");
    TORCH_CHECK(!e.prompt.empty(), source, ":", line, ": empty prompt");
    if (!out.empty()) {
      TORCH_CHECK(out.back().seconds == e.seconds, source, ":", line,
                  ": mixes block indices and seconds; use one unit for the whole file");
      TORCH_CHECK(e.start > out.back().start, source, ":", line, ": start ", e.start,
                  " is not after the previous entry's ", out.back().start, " (line ",
                  out.back().line, "); times must increase");
    } else {
      TORCH_CHECK(e.start == 0, source, ":", line, ": the first entry starts at ", e.start,
                  ", want 0 (the schedule must cover the first block)");
    }
    out.push_back(e);
  }
  TORCH_CHECK(!out.empty(), source, ": no schedule entries");
  return out;
}

std::vector<ScheduleEntry> read_prompt_schedule(const std::string& path) {
  TORCH_CHECK(core::file_exists(path), "--prompt-schedule: ", path, " does not exist");
  return parse_prompt_schedule(core::read_file(path), path);
}

std::vector<PromptSegment> resolve_schedule(const std::vector<ScheduleEntry>& entries, double fps,
                                            int64_t stride, int64_t nfpb,
                                            const std::string& source, int64_t total_blocks) {
  std::vector<PromptSegment> out;
  int prev_line = 0;
  for (const auto& e : entries) {
    int64_t block;
    if (e.seconds) {
      const int64_t pixel = std::llround(e.start * fps);
      const int64_t latent = (pixel + stride - 1) / stride;
      block = latent / nfpb;  // exact: checked below
      // A switch takes effect at a block: a time inside one is an error naming the two
      // block boundaries around it (the cross-attention of a block has one prompt).
      if (latent % nfpb != 0) {
        const int64_t before = latent / nfpb;
        auto at = [&](int64_t b) { return static_cast<double>(b * nfpb * stride) / fps; };
        TORCH_CHECK(false, source, ":", e.line, ": ", e.start, "s (latent frame ", latent,
                    ") switches inside block ", before, " (", nfpb, " latent frames per block); "
                    "want a block start: ", at(before), "s (block ", before, ") or ",
                    at(before + 1), "s (block ", before + 1, ")");
      }
    } else {
      block = static_cast<int64_t>(e.start);
    }
    TORCH_CHECK(total_blocks < 0 || block < total_blocks, source, ":", e.line, ": ", e.start,
                e.seconds ? "s" : "", " starts block ", block, ", past the end of the video (",
                total_blocks, " blocks of ", nfpb, " latent frames): the prompt would never be "
                "used");
    TORCH_CHECK(out.empty() || block > out.back().start_block, source, ":", e.line, ": ",
                e.start, "s lands on block ", block, ", the same block as line ", prev_line,
                "; space the entries at least one block (", nfpb, " latent frames) apart");
    out.push_back({block, e.prompt});
    prev_line = e.line;
  }
  return out;
}

}  // namespace causvid::inference
