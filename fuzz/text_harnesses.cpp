// fuzz/text_harnesses.cpp: text inputs: YAML configs, prompt files, prompt schedules,
// checkpoint state JSON (see harness.h).
#include "core/config.h"
#include "data/prompt_file.h"
#include "fuzz/harness.h"
#include "inference/generate.h"
#include "trainer/checkpoint_state.h"

namespace causvid::fuzz {
namespace {

std::string text(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

}  // namespace

void fuzz_config_yaml(const uint8_t* data, size_t size) {
  const std::string yaml = text(data, size);
  expect_clean("fuzz.yaml", [&] {
    core::Config c = core::parse_config(yaml, "fuzz.yaml");
    try {
      c.validate();
    } catch (const std::exception& e) {
      // validate() names the key, not the file (the caller adds the file): any clean error.
      return;
    }
    // A valid config survives its own round trip.
    if (core::parse_config(core::config_to_yaml(c), "fuzz.yaml") != c)
      finding("config_to_yaml round trip changed a valid config");
  });
}

void fuzz_prompt_file(const uint8_t* data, size_t size) {
  expect_clean("prompts.txt", [&] { data::parse_prompt_text(text(data, size), "prompts.txt"); });
}

void fuzz_prompt_schedule(const uint8_t* data, size_t size) {
  expect_clean("schedule.txt", [&] {
    const auto entries = inference::parse_prompt_schedule(text(data, size), "schedule.txt");
    inference::resolve_schedule(entries, 16.0, 4, 3, "schedule.txt", 40);
    inference::resolve_schedule(entries, 24.0, 4, 1, "schedule.txt", -1);
  });
}

// The first byte picks trainer_state.json (even) or a legacy meta.json (odd).
void fuzz_checkpoint_state(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const std::string body = text(data + 1, size - 1);
  if (data[0] % 2 == 0)
    expect_clean("trainer_state.json",
                 [&] { trainer::parse_checkpoint_state(body, "trainer_state.json"); });
  else
    expect_clean("meta.json", [&] { trainer::parse_legacy_meta(body, "meta.json"); });
}

}  // namespace causvid::fuzz
