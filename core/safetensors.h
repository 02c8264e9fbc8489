// core/safetensors.h: the safetensors format (huggingface/safetensors), read and write.
// Layout: u64 little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, "__metadata__": {..}},
// then the raw little-endian bytes; offsets are relative to the end of the header.
// Reading memory-maps the file and is lazy: tensor(name) copies only that tensor out.
// Every header field and every offset is checked against the file size before use.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace causvid::core {

using TensorMap = std::map<std::string, torch::Tensor>;

struct TensorInfo {
  std::string dtype_name;  // "F32", "BF16", ...
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the data section
};

class SafetensorsFile {
 public:
  // Opens and validates `path`; throws c10::Error naming the file on any problem.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> keys() const;  // sorted
  bool contains(const std::string& key) const { return infos_.count(key) > 0; }
  const TensorInfo& info(const std::string& key) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // A freshly allocated CPU tensor holding a copy of the stored bytes.
  torch::Tensor tensor(const std::string& key) const;
  // Elements [begin, end) of the flattened tensor `key`, as a 1-D copy: only those bytes of
  // the memory map are read (sharded-checkpoint resume reads just its own slice).
  torch::Tensor read_range(const std::string& key, int64_t begin, int64_t end) const;
  TensorMap all() const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  size_t data_start_ = 0;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// Reads every tensor of a safetensors file.
TensorMap load_safetensors(const std::string& path);

// Writes `tensors` (made contiguous, on CPU) atomically: to path + ".tmp", then rename.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A sharded checkpoint as huggingface writes it (save_pretrained with max_shard_size):
// `<base>.safetensors.index.json` = {"metadata": {"total_size": N}, "weight_map": {key:
// shard file}} beside the shard files. Reads every shard the index names (a missing shard
// file, or a key absent from the shard the index names, is an error naming the index and the
// shard) and returns all their tensors.
TensorMap load_sharded_safetensors(const std::string& index_path);

// Writes `tensors` as `<dir>/<base>-0000k-of-0000n.safetensors` shards of at most
// `max_shard_bytes` each (a bigger tensor gets a shard of its own) and the index, or as one
// `<dir>/<base>.safetensors` when everything fits in one shard. Each file is written
// atomically; the index is written last.
void save_sharded_safetensors(const std::string& dir, const std::string& base,
                              const TensorMap& tensors, uint64_t max_shard_bytes);

// "F32" <-> torch dtype; throws on unknown names / unsupported dtypes.
torch::ScalarType safetensors_dtype(const std::string& name);
std::string safetensors_dtype_name(torch::ScalarType dtype);

}  // namespace causvid::core
