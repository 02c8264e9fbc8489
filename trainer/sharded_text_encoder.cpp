// trainer/sharded_text_encoder.cpp: see sharded_text_encoder.h.
#include "trainer/sharded_text_encoder.h"

namespace causvid::trainer {

ShardedTextEncoder::ShardedTextEncoder(std::unique_ptr<models::TextConditioner> inner,
                                       const core::Config& c,
                                       std::shared_ptr<core::DistContext> dist)
    : inner_(std::move(inner)) {
  auto module = inner_->weights();
  if (!module) return;
  auto fo = fsdp_options_from_config(c, "text_encoder");
  fo.trainable = false;
  sharded_ = std::make_unique<ShardedModule>(module, std::move(dist), fo);
}

torch::Tensor ShardedTextEncoder::encode(const std::vector<std::string>& prompts) {
  if (!sharded_) return inner_->encode(prompts);
  auto scope = sharded_->gathered();
  return inner_->encode(prompts);
}

}  // namespace causvid::trainer
