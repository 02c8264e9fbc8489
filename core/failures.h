// core/failures.h: the failure list of the batch tools (preprocess, encode, ode-pairs, eval
// vbench; issue #14). A tool records one ItemFailure per item it could not do and carries on;
// at the end report_failures gathers every rank's list, rank 0 writes <out>/failures.txt
// ("item<TAB>reason" per line, sorted, written atomically) or removes a stale one when there
// were none, and the tool exits non-zero when the list is not empty. Not in CausVid, whose
// scripts stop at the first exception or print and go on without a record.
#pragma once

#include <string>
#include <vector>

#include "core/dist.h"

namespace causvid::core {

struct ItemFailure {
  std::string item, reason;
};

// The name of the failure list inside a tool's output folder.
inline constexpr const char* kFailuresFile = "failures.txt";

// "item<TAB>reason\n" lines (tabs and newlines inside the fields become spaces).
std::string format_failures(const std::vector<ItemFailure>& failures);
std::vector<ItemFailure> parse_failures(const std::string& text);
// Atomic write of `failures` to `path`, or removal of `path` when there are none.
void write_failures(const std::string& path, const std::vector<ItemFailure>& failures);
// The failures stored at `path`; empty when the file does not exist.
std::vector<ItemFailure> read_failures(const std::string& path);

// Collective over `world`: every rank's failures, sorted by item (the same on all ranks).
// Rank 0 writes them to <out_dir>/failures.txt (or removes it when there are none) and logs
// up to 10 of them.
std::vector<ItemFailure> report_failures(const DistGroup& world, const std::string& out_dir,
                                         const std::vector<ItemFailure>& mine,
                                         const std::string& tool);

}  // namespace causvid::core
