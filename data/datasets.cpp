// data/datasets.cpp: see datasets.h.
#include "data/datasets.h"

#include <filesystem>

#include "core/dist.h"
#include "data/array_lmdb.h"
#include "data/lmdb_verify.h"
#include "data/prompt_cache.h"

namespace causvid::data {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

class PromptFileDataset : public TrainDataset {
 public:
  explicit PromptFileDataset(const std::string& path)
      : path_(path), prompts_(read_prompt_file(path)) {
    TORCH_CHECK(!prompts_.empty(), path, ": no prompts");
  }
  int64_t size() const override { return static_cast<int64_t>(prompts_.size()); }
  std::string prompt(int64_t i) const override { return prompts_.at(i); }
  std::string describe() const override {
    return path_ + " (" + std::to_string(prompts_.size()) + " prompts)";
  }

 private:
  std::string path_;
  std::vector<std::string> prompts_;
};

class LatentLmdbDataset : public TrainDataset {
 public:
  LatentLmdbDataset(const std::string& path, const std::vector<int64_t>& frame_shape,
                    int64_t max_rows)
      : db_(path) {
    auto shape = db_.shape("latents");
    auto pshape = db_.shape("prompts");
    TORCH_CHECK(shape.size() == 5 || shape.size() == 6, path, ": 'latents_shape' is ",
                shape_str(shape), ", want [N, F, C, H, W] or [N, S, F, C, H, W]");
    TORCH_CHECK(pshape[0] >= shape[0], path, ": 'prompts_shape' has ", pshape[0],
                " rows for ", shape[0], " latent rows");
    row_shape_.assign(shape.begin() + 1, shape.end());
    std::vector<int64_t> frames(shape.end() - 4, shape.end());
    if (!frame_shape.empty())
      TORCH_CHECK(frames == frame_shape, path, ": latent rows are ", shape_str(row_shape_),
                  " (frames ", shape_str(frames), "), but the config's image_or_video_shape "
                  "wants [F, C, H, W] = ", shape_str(frame_shape));
    n_ = max_rows >= 0 ? std::min(shape[0], max_rows) : shape[0];
    TORCH_CHECK(n_ > 0, path, ": no rows");
  }
  int64_t size() const override { return n_; }
  std::string prompt(int64_t i) const override { return db_.string_row("prompts", i); }
  bool has_latents() const override { return true; }
  torch::Tensor latents(int64_t i) const override {
    auto t = db_.tensor_row("latents", i);
    return row_shape_.size() == 4 ? t.unsqueeze(0) : t;
  }
  std::string describe() const override {
    return db_.path() + " (" + std::to_string(n_) + " rows of " + shape_str(row_shape_) + ")";
  }

 private:
  ArrayLmdb db_;
  std::vector<int64_t> row_shape_;
  int64_t n_ = 0;
};

}  // namespace

std::shared_ptr<TrainDataset> open_train_dataset(const std::string& path,
                                                 const std::vector<int64_t>& frame_shape,
                                                 int64_t max_rows) {
  namespace fs = std::filesystem;
  std::error_code ec;
  TORCH_CHECK(!path.empty(), "key 'data_path': empty, want a prompt .txt file or an LMDB dir");
  TORCH_CHECK(fs::exists(path, ec), "key 'data_path': ", path, ": no such file or directory");
  if (fs::is_directory(path, ec)) {
    // LMDB pages carry no checksum: a corrupt file is rejected here with an error naming it,
    // instead of a signal inside liblmdb later (data/lmdb_verify.h).
    check_array_lmdb(path);
    return std::make_shared<LatentLmdbDataset>(path, frame_shape, max_rows);
  }
  return std::make_shared<PromptFileDataset>(path);
}

// ------------------------------------------------------------------ loader
DataLoader::DataLoader(std::shared_ptr<TrainDataset> ds, LoaderOptions opts, int64_t start)
    : ds_(std::move(ds)), opts_(opts), position_(start), next_load_(start) {
  TORCH_CHECK(opts_.batch_size >= 1, "batch_size: got ", opts_.batch_size, ", want >= 1");
  const int64_t per_rank = opts_.drop_last ? ds_->size() / opts_.world
                                           : (ds_->size() + opts_.world - 1) / opts_.world;
  per_epoch_ = per_rank / opts_.batch_size;  // the loader's drop_last (CausVid: True)
  TORCH_CHECK(per_epoch_ >= 1, ds_->describe(), ": too small for batch_size ", opts_.batch_size,
              " x ", opts_.world, " ranks");
  if (opts_.prefetch > 0) thread_ = std::thread([this] { worker(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Batch DataLoader::load(int64_t pos) const {
  const int64_t epoch = pos / per_epoch_, k = pos % per_epoch_;
  std::vector<int64_t> idx;
  {
    std::lock_guard<std::mutex> l(epoch_mu_);
    if (cached_epoch_ != epoch) {
      cached_indices_ = core::distributed_sampler_indices(
          ds_->size(), opts_.world, opts_.rank, opts_.shuffle, opts_.seed, epoch, opts_.drop_last);
      cached_epoch_ = epoch;
    }
    idx.assign(cached_indices_.begin() + k * opts_.batch_size,
               cached_indices_.begin() + (k + 1) * opts_.batch_size);
  }
  Batch b;
  b.indices = idx;
  std::vector<torch::Tensor> lat;
  for (auto i : idx) {
    b.prompts.push_back(ds_->prompt(i));
    if (ds_->has_latents()) lat.push_back(ds_->latents(i));
  }
  if (!lat.empty()) {
    b.latents = torch::stack(lat);
    if (opts_.pin_memory) b.latents = b.latents.pin_memory();
  }
  return b;
}

void DataLoader::worker() {
  for (;;) {
    int64_t pos;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || (int)queue_.size() < opts_.prefetch; });
      if (stop_ || error_) return;
      pos = next_load_++;
    }
    try {
      Batch b = load(pos);
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(std::move(b));
    } catch (...) {
      std::lock_guard<std::mutex> l(mu_);
      error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

Batch DataLoader::next() {
  if (opts_.prefetch <= 0) return load(position_++);
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return !queue_.empty() || error_; });
  if (queue_.empty() && error_) std::rethrow_exception(error_);
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  ++position_;
  l.unlock();
  cv_.notify_all();
  return b;
}

}  // namespace causvid::data
