// models/t5/t5_layouts.cpp: see t5_layouts.h.
#include "models/t5/t5_layouts.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "models/t5/umt5.h"

namespace causvid::models {

const KeyTable& hf_umt5_table() {
  static const KeyTable t("transformers UMT5EncoderModel", {
      {"token_embedding.weight", "shared.weight"},
      {"blocks.{i}.norm1.weight", "encoder.block.{i}.layer.0.layer_norm.weight"},
      {"blocks.{i}.attn.q.weight", "encoder.block.{i}.layer.0.SelfAttention.q.weight"},
      {"blocks.{i}.attn.k.weight", "encoder.block.{i}.layer.0.SelfAttention.k.weight"},
      {"blocks.{i}.attn.v.weight", "encoder.block.{i}.layer.0.SelfAttention.v.weight"},
      {"blocks.{i}.attn.o.weight", "encoder.block.{i}.layer.0.SelfAttention.o.weight"},
      {"blocks.{i}.pos_embedding.embedding.weight",
       "encoder.block.{i}.layer.0.SelfAttention.relative_attention_bias.weight"},
      {"blocks.{i}.norm2.weight", "encoder.block.{i}.layer.1.layer_norm.weight"},
      {"blocks.{i}.ffn.gate.0.weight", "encoder.block.{i}.layer.1.DenseReluDense.wi_0.weight"},
      {"blocks.{i}.ffn.fc1.weight", "encoder.block.{i}.layer.1.DenseReluDense.wi_1.weight"},
      {"blocks.{i}.ffn.fc2.weight", "encoder.block.{i}.layer.1.DenseReluDense.wo.weight"},
      {"norm.weight", "encoder.final_layer_norm.weight"},
  });
  return t;
}

core::TensorMap umt5_to_ours(const core::TensorMap& sd, const std::string& source) {
  bool hf = false;
  for (const auto& kv : sd) hf |= kv.first.rfind("encoder.block.", 0) == 0 || kv.first == "shared.weight";
  if (!hf) return sd;
  core::TensorMap in = sd;
  auto tied = in.find("encoder.embed_tokens.weight");
  if (tied != in.end()) {  // the tied copy of shared.weight (older transformers save both)
    auto shared = in.find("shared.weight");
    if (shared == in.end()) {
      in["shared.weight"] = tied->second;
    } else {
      TORCH_CHECK(torch::equal(shared->second, tied->second), source,
                  ": shared.weight and encoder.embed_tokens.weight differ (want tied embeddings)");
    }
    in.erase("encoder.embed_tokens.weight");
  }
  return hf_umt5_table().to_ours(in, source);
}

void save_hf_umt5(const std::string& dir, const core::TensorMap& sd, const std::string& source) {
  const auto c = UMT5Config::infer(sd, source);
  TORCH_CHECK(!c.shared_pos, source, ": a shared relative position table (T5, not umT5) has no "
              "UMT5EncoderModel layout");
  nlohmann::json j = {{"architectures", {"UMT5EncoderModel"}},
                      {"model_type", "umt5"},
                      {"d_model", c.dim},
                      {"d_kv", c.dim_attn / c.num_heads},
                      {"d_ff", c.dim_ffn},
                      {"num_heads", c.num_heads},
                      {"num_layers", c.num_layers},
                      {"num_decoder_layers", c.num_layers},
                      {"vocab_size", c.vocab},
                      {"relative_attention_num_buckets", c.num_buckets},
                      {"relative_attention_max_distance", c.max_dist},
                      {"layer_norm_epsilon", c.eps},
                      {"feed_forward_proj", "gated-gelu"},
                      {"dense_act_fn", "gelu_new"},
                      {"is_gated_act", true},
                      {"is_encoder_decoder", true},
                      {"tie_word_embeddings", true},
                      {"pad_token_id", 0},
                      {"eos_token_id", 1},
                      {"decoder_start_token_id", 0},
                      {"dropout_rate", 0.1},
                      {"tokenizer_class", "T5Tokenizer"}};
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  fs::remove(fs::path(dir) / "model.safetensors.index.json");
  fs::remove(fs::path(dir) / "model.safetensors");
  core::write_file_atomic((fs::path(dir) / "config.json").string(), j.dump(2));
  core::save_safetensors((fs::path(dir) / "model.safetensors").string(),
                         hf_umt5_table().to_foreign(sd, source), {{"format", "pt"}});
}

std::string resolve_umt5_file(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return path;
  for (const char* name : {"model.safetensors", "model.safetensors.index.json"})
    if (fs::exists(fs::path(path) / name)) return (fs::path(path) / name).string();
  if (fs::is_directory(fs::path(path) / "text_encoder"))
    return resolve_umt5_file((fs::path(path) / "text_encoder").string());
  TORCH_CHECK(false, "text_encoder_path: ", path, " is a directory without model.safetensors"
              "[.index.json] (a transformers text_encoder/ folder) or text_encoder/ (a diffusers "
              "pipeline folder)");
}

}  // namespace causvid::models
