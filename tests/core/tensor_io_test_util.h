// tests/core/tensor_io_test_util.h: helpers of the tensor_io tests (tensor_io_test.cpp,
// tensor_io_corrupt_test.cpp): a sample checkpoint, tensor comparison, and running the pinned
// torch wheel's Python on a script.
#pragma once

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/fs.h"
#include "core/tensor_io.h"
#include "tests/test_util.h"

namespace causvid::tio_test {

using testing::TempDir;

// ---------------------------------------------------------------- helpers

inline std::string hex_bytes(const torch::Tensor& t) {
  auto c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  const size_t n = c.numel() * c.element_size();
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += std::string{kHex[p[i] >> 4], kHex[p[i] & 15]};
  return out;
}

inline std::string torch_dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return "torch.float32";
    case torch::kFloat16:
      return "torch.float16";
    case torch::kBFloat16:
      return "torch.bfloat16";
    case torch::kFloat64:
      return "torch.float64";
    case torch::kInt64:
      return "torch.int64";
    case torch::kInt32:
      return "torch.int32";
    case torch::kInt16:
      return "torch.int16";
    case torch::kInt8:
      return "torch.int8";
    case torch::kUInt8:
      return "torch.uint8";
    case torch::kBool:
      return "torch.bool";
    default:
      return "?";
  }
}

// Exact equality including dtype, shape, strides, offset and bytes.
inline void expect_same_tensor(const torch::Tensor& a, const torch::Tensor& b, const std::string& key) {
  ASSERT_TRUE(a.defined() && b.defined()) << key;
  EXPECT_EQ(a.scalar_type(), b.scalar_type()) << key;
  EXPECT_EQ(a.sizes(), b.sizes()) << key;
  EXPECT_EQ(a.strides(), b.strides()) << key;
  EXPECT_EQ(a.storage_offset(), b.storage_offset()) << key;
  EXPECT_EQ(hex_bytes(a), hex_bytes(b)) << key;
}

// A nested checkpoint with every dtype, views and shared storages (CausVid model.pt layout).
struct Sample {
  core::TensorMap gen, critic;
  c10::IValue obj;
};
inline Sample make_sample() {
  torch::manual_seed(0);
  Sample s;
  auto base = torch::arange(24, torch::kFloat32);
  s.gen["model.blocks.0.weight"] = torch::randn({4, 3});
  s.gen["model.blocks.0.bias"] = torch::randn({4}).to(torch::kBFloat16);
  s.gen["model.view_offset"] = base.slice(0, 5, 11);              // offset 5 into base
  s.gen["model.view_t"] = base.slice(0, 0, 12).view({3, 4}).t();  // non-contiguous
  s.gen["model.base"] = base;                                     // shares the storage
  s.gen["model.half"] = torch::randn({2, 2}).to(torch::kFloat16);
  s.critic["model.f64"] = torch::randn({3}, torch::kFloat64);
  s.critic["model.i64"] = torch::arange(-3, 3);
  s.critic["model.i32"] = torch::arange(5, torch::kInt32);
  s.critic["model.i16"] = torch::arange(5, torch::kInt16);
  s.critic["model.i8"] = torch::arange(-2, 3, torch::kInt8);
  s.critic["model.u8"] = torch::arange(250, 256, torch::kInt32).to(torch::kUInt8);
  s.critic["model.bool"] = torch::tensor({true, false, true});
  s.critic["model.scalar"] = torch::tensor(2.5f);
  s.critic["model.empty"] = torch::zeros({0, 3});
  auto extra = core::nested_dict({{"step", c10::IValue(int64_t(123456789012))},
                                  {"lr", c10::IValue(1e-5)},
                                  {"name", c10::IValue(std::string("causvid"))},
                                  {"flag", c10::IValue(true)},
                                  {"none", c10::IValue()},
                                  {"neg", c10::IValue(int64_t(-7))}});
  s.obj = core::nested_dict({{"generator", core::tensor_dict(s.gen)},
                             {"critic", core::tensor_dict(s.critic)},
                             {"extra", extra}});
  return s;
}

inline bool have_python_torch() {
  static int ok = -1;
  if (ok < 0) ok = testing::run_command(std::string(CAUSVID_PYTHON) + " -c 'import torch'") == 0;
  return ok == 1;
}

// Writes `text` and runs it with the pinned torch's Python; fails the test with its output on error.
inline void run_python(const TempDir& dir, const std::string& text, const std::string& args) {
  const std::string script = dir.file("script.py");
  core::write_file_atomic(script, text);
  std::string out;
  const int rc = testing::run_command(std::string(CAUSVID_PYTHON) + " " + script + " " + args, &out);
  ASSERT_EQ(rc, 0) << out;
}

// Python side: describe(obj) -> JSON {flat key: tensor facts | value repr}, plus container
// types and storage sharing groups, to compare against what C++ sees.
inline const char* kPyDescribe = R"PY(
import json, sys, collections, argparse, torch

def describe(obj):
    out, types, storages = {}, {}, {}
    def rec(o, prefix):
        if isinstance(o, torch.Tensor):
            t = o.detach()
            sid = t.storage().data_ptr()
            storages.setdefault(sid, len(storages))
            flat = t.contiguous().reshape(-1).view(torch.uint8)
            out[prefix] = {"dtype": str(t.dtype), "shape": list(t.shape),
                           "stride": list(t.stride()), "offset": t.storage_offset(),
                           "storage": storages[sid], "param": isinstance(o, torch.nn.Parameter),
                           "hex": bytes(flat.tolist()).hex()}
        elif isinstance(o, dict):
            types[prefix] = type(o).__name__
            for k, v in o.items():
                rec(v, k if prefix == "" else prefix + "." + str(k))
        elif isinstance(o, (list, tuple)):
            types[prefix] = type(o).__name__
            for i, v in enumerate(o):
                rec(v, str(i) if prefix == "" else prefix + "." + str(i))
        else:
            out[prefix] = {"value": repr(o)}
    rec(obj, "")
    return {"tensors": out, "types": types}
)PY";

}  // namespace causvid::tio_test
