// data/datasets.h: the training datasets and the loader of the stage trainers. Ports
// causvid/data.py (TextDataset: one prompt per line; ODERegressionLMDBDataset: rows
// "latents" + "prompts" of a CausVid array LMDB) and the torch DataLoader +
// DistributedSampler + cycle() that train_distillation.py / train_ode.py wrap them in.
//
//   auto ds = open_train_dataset(cfg.data_path, {F, C, H, W}, cfg.max_pair);
//   DataLoader dl(ds, {batch, world, rank, seed});
//   Batch b = dl.next();   // b.latents [B, S, F, C, H, W] (S = 1 for a latent LMDB)
//
// Latent rows of rank 4 ([F, C, H, W], e.g. mixkit_latents_lmdb) are one trajectory point
// (S = 1); rank 5 rows are ODE trajectories [S, F, C, H, W]. The row shape is checked
// against the config's image_or_video_shape when the dataset opens.
// Deliberate difference: CausVid never calls sampler.set_epoch, so every epoch repeats the
// first permutation; here epoch e shuffles with seed + e (torch's documented use).
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace causvid::data {

class TrainDataset {
 public:
  virtual ~TrainDataset() = default;
  virtual int64_t size() const = 0;
  virtual std::string prompt(int64_t i) const = 0;
  virtual bool has_latents() const { return false; }
  // [S, F, C, H, W] float32.
  virtual torch::Tensor latents(int64_t /*i*/) const { return {}; }
  virtual std::string describe() const = 0;
};

// A prompt .txt file (data::read_prompt_file rules) or a CausVid array LMDB directory, which
// is verified first (check_array_lmdb, data/lmdb_verify.h: a corrupt file is an error naming
// it, never a signal).
// frame_shape: the expected [F, C, H, W] of latent rows (empty: not checked).
std::shared_ptr<TrainDataset> open_train_dataset(const std::string& path,
                                                 const std::vector<int64_t>& frame_shape,
                                                 int64_t max_rows = -1);

struct Batch {
  std::vector<std::string> prompts;
  torch::Tensor latents;  // [B, S, F, C, H, W] or undefined
  std::vector<int64_t> indices;
};

struct LoaderOptions {
  int64_t batch_size = 1;  // per rank
  int world = 1, rank = 0;
  int64_t seed = 0;
  bool shuffle = true, drop_last = true;
  int prefetch = 2;  // batches read ahead by a background thread (0 = synchronous)
  // Latents in page-locked memory (built so, in the prefetch thread when there is one), for
  // non-blocking host-to-GPU copies. Needs a CUDA build and machine.
  bool pin_memory = false;
};

// Cycles over epochs forever. position() = batches handed out; a loader constructed with
// start_position continues exactly where one with that position left off (resume).
class DataLoader {
 public:
  DataLoader(std::shared_ptr<TrainDataset> ds, LoaderOptions opts, int64_t start_position = 0);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  Batch next();
  int64_t position() const { return position_; }
  int64_t batches_per_epoch() const { return per_epoch_; }

 private:
  Batch load(int64_t position) const;
  void worker();
  std::shared_ptr<TrainDataset> ds_;
  LoaderOptions opts_;
  int64_t per_epoch_ = 0;
  int64_t position_ = 0;
  // Prefetch.
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  int64_t next_load_ = 0;
  bool stop_ = false;
  mutable std::mutex epoch_mu_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_indices_;
};

}  // namespace causvid::data
