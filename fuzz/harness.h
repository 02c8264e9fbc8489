// fuzz/harness.h: the fuzz harnesses of every parser of outside bytes (issue #14). Each one
// feeds one input to a parser and returns normally when the parser either accepts it or
// refuses it with an error (std::exception) whose message names the input; anything else is
// a finding: a crash, a sanitizer report, an error that does not name the file, a hang or an
// allocation past libFuzzer's limit.
//
// The same functions run in two places:
//   - `causvid_fuzz` (fuzz/fuzz_main.cpp, clang -fsanitize=fuzzer,address,undefined), one
//     harness per process chosen by CAUSVID_FUZZ_TARGET; ctest label `fuzz`
//     (docs/fuzzing.md);
//   - the ordinary test binary (tests/fuzz/replay_test.cpp), which replays every seed and
//     every saved crash (fuzz/corpus/<target>/, fuzz/regressions/<target>/) through them, so
//     a fixed crash stays fixed in every build.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace causvid::fuzz {

struct Harness {
  const char* name;
  void (*run)(const uint8_t* data, size_t size);
  const char* what;  // one line: the parser and the entry point
};

// Every harness, in a fixed order.
const std::vector<Harness>& harnesses();
const Harness* find_harness(const std::string& name);

// ---- helpers shared by the harness files
// A scratch file for this process (in /dev/shm when it exists), rewritten with `bytes`;
// returns its path. `suffix` gives it an extension (".png", ".mp4") where a parser looks.
std::string scratch_file(const std::string& tag, const uint8_t* data, size_t size,
                         const std::string& suffix = "");
// Calls `parse`; an exception is fine when its message contains `must_name` (the file or
// source); an exception without it, or a non-standard exception, aborts (a finding).
template <class F>
void expect_clean(const std::string& must_name, F&& parse);
// Reads every element of a tensor (so a view past a mapped file or a bad stride faults here).
void touch(const torch::Tensor& t);

[[noreturn]] void finding(const std::string& what);

// The harnesses (weights_harnesses.cpp, text_harnesses.cpp, media_harnesses.cpp).
void fuzz_safetensors(const uint8_t* data, size_t size);
void fuzz_torch_zip(const uint8_t* data, size_t size);
void fuzz_torch_pickle(const uint8_t* data, size_t size);
void fuzz_config_yaml(const uint8_t* data, size_t size);
void fuzz_prompt_file(const uint8_t* data, size_t size);
void fuzz_prompt_schedule(const uint8_t* data, size_t size);
void fuzz_checkpoint_state(const uint8_t* data, size_t size);
void fuzz_json_configs(const uint8_t* data, size_t size);
void fuzz_lmdb_rows(const uint8_t* data, size_t size);
void fuzz_image(const uint8_t* data, size_t size);
void fuzz_video(const uint8_t* data, size_t size);

template <class F>
void expect_clean(const std::string& must_name, F&& parse) {
  try {
    parse();
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    if (msg.find(must_name) == std::string::npos)
      finding("error does not name '" + must_name + "': " + msg.substr(0, 2000));
  } catch (...) {
    finding("non-standard exception");
  }
}

}  // namespace causvid::fuzz
