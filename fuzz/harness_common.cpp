// fuzz/harness_common.cpp: the harness table and helpers (see harness.h).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "fuzz/harness.h"

namespace causvid::fuzz {

const std::vector<Harness>& harnesses() {
  static const std::vector<Harness> kAll = {
      {"safetensors", fuzz_safetensors, "core::load_weights on a .safetensors file"},
      {"torch_zip", fuzz_torch_zip, "core::load_weights on a torch.save zip (zip + unpickler)"},
      {"torch_pickle", fuzz_torch_pickle,
       "core::load_weights on a torch.save zip whose data.pkl is the input"},
      {"config_yaml", fuzz_config_yaml, "core::parse_config + validate (YAML training config)"},
      {"prompt_file", fuzz_prompt_file, "data::parse_prompt_text (prompt .txt files)"},
      {"prompt_schedule", fuzz_prompt_schedule,
       "inference::parse_prompt_schedule + resolve_schedule"},
      {"checkpoint_state", fuzz_checkpoint_state,
       "trainer::parse_checkpoint_state / parse_legacy_meta (trainer_state.json, meta.json)"},
      {"json_configs", fuzz_json_configs,
       "diffusers config.json -> WanConfig, tokenizer_config.json, safetensors index"},
      {"lmdb_rows", fuzz_lmdb_rows,
       "data::parse_array_shape + decode_array_row (LMDB shape keys and rows)"},
      {"image", fuzz_image, "data::read_image (FFmpeg: PNG, JPEG, ...)"},
      {"video", fuzz_video, "data::probe_video + decode_video (FFmpeg: MP4, ...)"},
  };
  return kAll;
}

const Harness* find_harness(const std::string& name) {
  for (const auto& h : harnesses())
    if (name == h.name) return &h;
  return nullptr;
}

std::string scratch_file(const std::string& tag, const uint8_t* data, size_t size,
                         const std::string& suffix) {
  // One folder per process, removed at exit.
  static const struct ScratchDir {
    std::string path;
    ScratchDir() {
      const std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
      path = base + "/causvid-fuzz-" + std::to_string(getpid());
      std::filesystem::create_directories(path);
    }
    ~ScratchDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } dir;
  const std::string path = dir.path + "/" + tag + suffix;  // tag may name a subfolder
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  const std::string tmp = path + ".w";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) finding("cannot write the scratch file " + tmp);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) finding("cannot write the scratch file " + tmp);
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  // A new inode each time: the previous input may still be mapped by a tensor.
  if (std::rename(tmp.c_str(), path.c_str()) != 0) finding("cannot rename " + tmp);
  return path;
}

void touch(const torch::Tensor& t) {
  if (!t.defined() || t.numel() == 0) return;
  const auto c = t.contiguous();
  const auto* p = static_cast<const volatile uint8_t*>(c.data_ptr());
  uint8_t acc = 0;
  for (size_t i = 0, n = c.nbytes(); i < n; ++i) acc ^= p[i];
  static volatile uint8_t sink;
  sink = acc;
}

void finding(const std::string& what) {
  std::fprintf(stderr, "causvid fuzz finding: %s\n", what.c_str());
  std::abort();
}

}  // namespace causvid::fuzz
