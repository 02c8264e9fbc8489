// core/tensor_io.h: weight files. Reads safetensors (core/safetensors.h) and PyTorch's zip
// checkpoints (.pt/.pth written by Python's torch.save >= 1.6), and writes zip checkpoints that
// Python's torch.load reads back.
//
// Ports the loading half of torch/serialization.py (_load, persistent_load) and the parts of
// Python's pickle protocol 2..5 that torch.save emits, because LibTorch 1.13's
// torch::pickle_load rejects collections.OrderedDict and single-item SETITEM. The zip records
// are read with caffe2::serialize::PyTorchStreamReader; data.pkl is unpickled here.
//
// Deliberate differences from torch.load:
//   - Everything loads to CPU (the storage's saved location is ignored).
//   - By default tensors view a private (copy-on-write) memory map of the file: loading
//     costs only the pickle, bytes are paged in on first use, and copying into a module's
//     parameters (core::load_state_dict) is the only copy. Writing to a loaded tensor is
//     safe (it touches a private page), but truncating the file in place while tensors are
//     alive would fault; our writers replace files by rename, which does not.
//   - Classes other than dict/OrderedDict/list/tuple/set/tensor/Parameter/torch.Size are not
//     executed: an instance becomes a dict {"__class__": "module.Name", ...its state...}, a
//     bare class or function reference (e.g. torch.float32) becomes the string
//     "module.name". Quantized, sparse and numpy-backed tensors are refused with an error.
//   - The legacy non-zip torch.save format (torch < 1.6 or _use_new_zipfile_serialization=
//     False) is refused with an error that says how to convert the file.
#pragma once

#include <ATen/core/ivalue.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"

namespace causvid::core {

enum class WeightFormat { kSafetensors, kTorchZip, kTorchLegacy, kUnknown };

// Looks at the first bytes of `path` (zip magic "PK\3\4" -> kTorchZip, a pickle PROTO opcode
// -> kTorchLegacy, u64 header length + '{' -> kSafetensors). Throws naming the file if it
// cannot be opened.
WeightFormat detect_weight_format(const std::string& path);
const char* weight_format_name(WeightFormat f);

struct TorchLoadOptions {
  // Tensors view a copy-on-write memory map of the file (see above; load_weights does the
  // same for safetensors). false: every storage is copied into freshly allocated memory.
  bool mmap = true;
};

// The object stored by torch.save in a zip checkpoint: dict/OrderedDict -> GenericDict (in
// file order), list/set -> GenericList, tuple -> Tuple, tensor/Parameter -> Tensor on CPU
// (storage sharing, offsets and strides as saved), int/float/str/bytes/bool/None -> the
// IValue of that type. Throws c10::Error naming the file on any problem.
c10::IValue load_torch_checkpoint(const std::string& path, const TorchLoadOptions& opt = {});

// A non-tensor leaf of a checkpoint, e.g. {"step": 1000} -> {"step", IValue(1000)}.
using NamedValues = std::vector<std::pair<std::string, c10::IValue>>;

// Tensors of a nested object keyed by their paths joined with "." (dict keys, list and tuple
// indices): {"generator": {"model.x": t}} -> {"generator.model.x": t}. Non-tensor leaves
// are appended to *others when given, else skipped. Empty containers vanish.
TensorMap flatten_tensors(const c10::IValue& obj, const std::string& prefix = "",
                          NamedValues* others = nullptr);

// Any supported weight file as a flat map, dispatching on content: safetensors, or a
// torch.save zip flattened with flatten_tensors (so CausVid's model.pt gives keys
// "generator.model.blocks.0...." and "critic.model...."). Non-tensor leaves are skipped.
// A huggingface shard index (<base>.safetensors.index.json) loads all its shards.
TensorMap load_weights(const std::string& path, const TorchLoadOptions& opt = {});

// Writes `obj` atomically (temporary file, then rename) as a torch.save zip archive that
// Python's torch.load (1.13 and later) reads back. Supported values: dicts with str/int/
// float/bool keys, lists, tuples, tensors (any device; moved to CPU), int, float, bool, str,
// None. Tensors sharing a storage share it in the file (as torch.save does, the whole
// storage is written, views keep their offset and strides). Dicts load as plain dicts.
void save_torch_checkpoint(const std::string& path, const c10::IValue& obj);
// A flat state dict {"key": tensor} (keys in sorted order).
void save_torch_checkpoint(const std::string& path, const TensorMap& flat);

// Builders for save_torch_checkpoint: a str -> Tensor dict, and a str -> anything dict
// keeping the given order, e.g. nested_dict({{"generator", tensor_dict(g)},
// {"critic", tensor_dict(c)}}) for CausVid's model.pt layout.
c10::IValue tensor_dict(const TensorMap& tensors);
c10::IValue nested_dict(const std::vector<std::pair<std::string, c10::IValue>>& items);

// One line per value for logs and `causvid inspect` ("5", "'text'", "[1, 2]", "None"),
// truncated to about `max_chars` characters.
std::string ivalue_summary(const c10::IValue& v, size_t max_chars = 80);

}  // namespace causvid::core
