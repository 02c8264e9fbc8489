// core/random.h: the one rule for random draws. Every draw of the framework comes from an
// at::Generator passed in explicitly (never the global one) and lands on the device the caller
// asks for. A CPU generator draws on the CPU and the result is copied to the target device, so
// a seed means the same numbers on CPU and on CUDA (bit-identical noise, timesteps and
// indices on every device; the cost is one host-to-device copy per draw, small next to a DiT
// forward). A CUDA generator draws directly on its device (faster for huge draws; its stream
// differs from the CPU's). The trainer, samplers and generate use CPU generators.
//
// RandomSource is the one interface every draw of a training step goes through (StageEnv::rng):
// GeneratorSource draws from a generator with the functions below (what training runs; the
// numbers are those of calling them directly), ReplaySource hands out recorded tensors in
// order (the train_step fixtures replay the reference's draws through it).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace causvid::core {

// N(0, 1) of `shape`, float32 unless opts says otherwise, on opts' device.
torch::Tensor randn(at::IntArrayRef shape, at::Generator& gen,
                    const torch::TensorOptions& opts = {});
torch::Tensor randn_like(const torch::Tensor& x, at::Generator& gen);
// U[0, 1) and integers in [low, high), on opts' device.
torch::Tensor rand(at::IntArrayRef shape, at::Generator& gen, const torch::TensorOptions& opts = {});
torch::Tensor randint(int64_t low, int64_t high, at::IntArrayRef shape, at::Generator& gen,
                      const torch::TensorOptions& opts = torch::kLong);

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // As the free functions above: N(0, 1), U[0, 1), integers in [low, high).
  virtual torch::Tensor randn(at::IntArrayRef shape, const torch::TensorOptions& opts) = 0;
  virtual torch::Tensor rand(at::IntArrayRef shape, const torch::TensorOptions& opts) = 0;
  virtual torch::Tensor randint(int64_t low, int64_t high, at::IntArrayRef shape,
                                const torch::TensorOptions& opts) = 0;
};

// Draws from `gen` (not owned; it outlives the source).
class GeneratorSource : public RandomSource {
 public:
  explicit GeneratorSource(at::Generator& gen) : gen_(gen) {}
  torch::Tensor randn(at::IntArrayRef shape, const torch::TensorOptions& opts) override;
  torch::Tensor rand(at::IntArrayRef shape, const torch::TensorOptions& opts) override;
  torch::Tensor randint(int64_t low, int64_t high, at::IntArrayRef shape,
                        const torch::TensorOptions& opts) override;
  at::Generator& generator() { return gen_; }

 private:
  at::Generator& gen_;
};

// Hands out `draws` in order, cast to opts' dtype and device. A draw whose shape or kind
// (floating for randn/rand, integral in [low, high) for randint) differs from the request,
// or a request past the last draw, throws naming the draw's index, the call and both shapes.
// `source` names the recording in messages.
class ReplaySource : public RandomSource {
 public:
  ReplaySource(std::vector<torch::Tensor> draws, std::string source);
  torch::Tensor randn(at::IntArrayRef shape, const torch::TensorOptions& opts) override;
  torch::Tensor rand(at::IntArrayRef shape, const torch::TensorOptions& opts) override;
  torch::Tensor randint(int64_t low, int64_t high, at::IntArrayRef shape,
                        const torch::TensorOptions& opts) override;
  size_t used() const { return next_; }
  size_t size() const { return draws_.size(); }
  // Throws unless every draw was used (a step that draws fewer times than the recording).
  void check_all_used() const;

 private:
  torch::Tensor take(const std::string& call, at::IntArrayRef shape, bool integral);
  std::vector<torch::Tensor> draws_;
  std::string source_;
  size_t next_ = 0;
};

}  // namespace causvid::core
