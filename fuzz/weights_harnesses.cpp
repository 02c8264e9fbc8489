// fuzz/weights_harnesses.cpp: weight files (safetensors, torch.save zips and their pickles,
// sharded safetensors indexes) and the JSON configs that come with them (see harness.h).
#include <caffe2/serialize/inline_container.h>

#include "core/safetensors.h"
#include "core/tensor_io.h"
#include "fuzz/harness.h"
#include "models/wan/wan_layouts.h"

namespace causvid::fuzz {
namespace {

void load_and_touch(const std::string& path) {
  expect_clean(path, [&] {
    for (const auto& [key, t] : core::load_weights(path)) touch(t);
  });
}

// 64 bytes of storage "0" beside the fuzzed data.pkl, so that persistent ids naming it load.
const std::vector<uint8_t>& storage_bytes() {
  static const std::vector<uint8_t> b(64, 0x3f);
  return b;
}

}  // namespace

void fuzz_safetensors(const uint8_t* data, size_t size) {
  load_and_touch(scratch_file("st", data, size, ".safetensors"));
}

void fuzz_torch_zip(const uint8_t* data, size_t size) {
  load_and_touch(scratch_file("zip", data, size, ".pt"));
}

void fuzz_torch_pickle(const uint8_t* data, size_t size) {
  const std::string path = scratch_file("pkl", nullptr, 0, ".pt");
  {
    caffe2::serialize::PyTorchStreamWriter w(path);
    w.writeRecord("data.pkl", data, size);
    w.writeRecord("byteorder", "little", 6);
    w.writeRecord("data/0", storage_bytes().data(), storage_bytes().size());
    w.writeEndOfFile();
  }
  load_and_touch(path);
}

// The input is split at the first NUL: [diffusers transformer config.json] \0 [a sharded
// safetensors index whose shard "a.safetensors" exists].
void fuzz_json_configs(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t cut = std::min(in.find('\0'), in.size());
  const std::string cfg = in.substr(0, cut);
  expect_clean("config.json", [&] {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(cfg);
    } catch (const nlohmann::json::exception& e) {
      TORCH_CHECK(false, "config.json: not valid JSON: ", e.what());
    }
    models::wan_config_from_diffusers(j, "config.json");
  });
  if (cut >= in.size()) return;
  static const std::string shard = [] {
    core::TensorMap m{{"w", torch::arange(6, torch::kFloat32).reshape({2, 3})}};
    const std::string p = scratch_file("json/shard", nullptr, 0, ".safetensors");
    core::save_safetensors(p, m);
    return p;
  }();
  std::string index = in.substr(cut + 1);
  // The index names its shards relative to its own folder (a scratch subfolder that holds
  // only our shard): "a.safetensors" in the input becomes our shard's name.
  const std::string base = shard.substr(shard.rfind('/') + 1);
  for (size_t p = 0; (p = index.find("a.safetensors", p)) != std::string::npos; p += base.size())
    index.replace(p, 13, base);
  const std::string path = scratch_file("json/index", reinterpret_cast<const uint8_t*>(index.data()),
                                        index.size(), ".safetensors.index.json");
  expect_clean(path, [&] {
    for (const auto& [key, t] : core::load_sharded_safetensors(path)) touch(t);
  });
}

}  // namespace causvid::fuzz
