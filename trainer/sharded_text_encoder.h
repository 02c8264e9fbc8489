// trainer/sharded_text_encoder.h: the frozen text encoder under FSDP, as CausVid wraps its
// umT5 (fsdp_wrap(text_encoder, sharding_strategy, mixed_precision,
// text_encoder_fsdp_wrap_strategy)): its weights are sharded across the shard group and
// gathered only around each encode, so no rank holds the whole 5.7B-parameter encoder
// between encodes. A conditioner without an encoder (a prompt cache, a hash) passes through.
#pragma once

#include <memory>

#include "core/config.h"
#include "core/dist.h"
#include "models/t5/text_conditioner.h"
#include "trainer/fsdp.h"

namespace causvid::trainer {

class ShardedTextEncoder : public models::TextConditioner {
 public:
  ShardedTextEncoder(std::unique_ptr<models::TextConditioner> inner, const core::Config& c,
                     std::shared_ptr<core::DistContext> dist);
  torch::Tensor encode(const std::vector<std::string>& prompts) override;
  int64_t text_len() const override { return inner_->text_len(); }
  int64_t dim() const override { return inner_->dim(); }
  torch::ScalarType output_dtype() const override { return inner_->output_dtype(); }
  std::shared_ptr<torch::nn::Module> weights() override { return inner_->weights(); }
  // Null when the inner conditioner runs no encoder.
  ShardedModule* sharded() { return sharded_.get(); }

 private:
  std::unique_ptr<models::TextConditioner> inner_;
  std::unique_ptr<ShardedModule> sharded_;
};

}  // namespace causvid::trainer
