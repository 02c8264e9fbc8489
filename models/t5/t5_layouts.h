// models/t5/t5_layouts.h: the umT5 encoder in the layouts people download: Wan2.1's
// models_t5_umt5-xxl-enc-bf16.pth (our names) and transformers' UMT5EncoderModel
// (a diffusers pipeline's text_encoder/: config.json + model.safetensors or shards + index).
// The transformers names live in one KeyTable, used both ways.
#pragma once

#include <string>

#include "core/safetensors.h"
#include "models/common/key_table.h"

namespace causvid::models {

const KeyTable& hf_umt5_table();

// A state dict in either layout -> our names (transformers' tied shared.weight /
// encoder.embed_tokens.weight become token_embedding.weight).
core::TensorMap umt5_to_ours(const core::TensorMap& sd, const std::string& source);

// Writes an encoder state dict (our names) as transformers' UMT5EncoderModel folder:
// <dir>/config.json + model.safetensors (shared.weight carries the tied embedding).
void save_hf_umt5(const std::string& dir, const core::TensorMap& sd, const std::string& source);

// The weight file of a text_encoder/ folder, or of <path>/text_encoder (a pipeline folder);
// a file is returned as it is.
std::string resolve_umt5_file(const std::string& path);

}  // namespace causvid::models
