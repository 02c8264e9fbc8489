// trainer/checkpoint_state.h: trainer_state.json (and the meta.json of older checkpoints),
// the JSON a resume trusts. A parser of outside bytes (fuzzed by fuzz/text_harnesses.cpp):
// after parse_checkpoint_state every key the trainer reads exists where required and has the
// right type and range, so later reads cannot throw a bare JSON error or index out of range.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace causvid::trainer {

// Parses and checks trainer_state.json text; errors name `file` and the key:
//   step (integer >= 0, required), world_size (integer >= 1), data_position, seed (integers),
//   stage, format (strings), files {relative path: {bytes >= 0, crc32c: uint32}},
//   models {name: layout (check_model_layout)}.
nlohmann::json parse_checkpoint_state(const std::string& text, const std::string& file);

// One model's shard layout: shard_world (1..65536), strategy (string), optimizer_step
// (integer >= 0), units [{name, numel >= 0, shard_numel >= 0, params [strings], opt_step}].
void check_model_layout(const nlohmann::json& layout, const std::string& where);

// A legacy meta.json: {"modules": {name: layout}, "optimizer_step"}.
nlohmann::json parse_legacy_meta(const std::string& text, const std::string& file);

}  // namespace causvid::trainer
