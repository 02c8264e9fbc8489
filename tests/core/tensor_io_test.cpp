// tests/core/tensor_io_test.cpp: torch.save zip checkpoints (read, write, Python interop with
// the pinned torch wheel's Python), load_weights dispatch, corrupt-file errors and the
// `causvid inspect` subcommand.
#include "core/tensor_io.h"

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/fs.h"
#include "core/safetensors.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using testing::TempDir;
using json = nlohmann::json;

// ---------------------------------------------------------------- helpers

std::string hex_bytes(const torch::Tensor& t) {
  auto c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.data_ptr());
  const size_t n = c.numel() * c.element_size();
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += std::string{kHex[p[i] >> 4], kHex[p[i] & 15]};
  return out;
}

std::string torch_dtype_name(torch::ScalarType t) {
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
void expect_same_tensor(const torch::Tensor& a, const torch::Tensor& b, const std::string& key) {
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
Sample make_sample() {
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

bool have_python_torch() {
  static int ok = -1;
  if (ok < 0) ok = testing::run_command(std::string(CAUSVID_PYTHON) + " -c 'import torch'") == 0;
  return ok == 1;
}

// Writes `text` and runs it with the pinned torch's Python; fails the test with its output on error.
void run_python(const TempDir& dir, const std::string& text, const std::string& args) {
  const std::string script = dir.file("script.py");
  core::write_file_atomic(script, text);
  std::string out;
  const int rc = testing::run_command(std::string(CAUSVID_PYTHON) + " " + script + " " + args, &out);
  ASSERT_EQ(rc, 0) << out;
}

// Python side: describe(obj) -> JSON {flat key: tensor facts | value repr}, plus container
// types and storage sharing groups, to compare against what C++ sees.
const char* kPyDescribe = R"PY(
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

// ---------------------------------------------------------------- own writer + reader

TEST(TensorIO, RoundTripNestedAllDtypesViewsAndSharing) {
  TempDir dir;
  Sample s = make_sample();
  const std::string path = dir.file("model.pt");
  core::save_torch_checkpoint(path, s.obj);
  EXPECT_EQ(core::detect_weight_format(path), core::WeightFormat::kTorchZip);
  EXPECT_FALSE(core::file_exists(path + ".tmp." + std::to_string(::getpid())));

  for (bool mmap : {true, false}) {
    core::TorchLoadOptions opt;
    opt.mmap = mmap;
    c10::IValue obj = core::load_torch_checkpoint(path, opt);
    ASSERT_TRUE(obj.isGenericDict());
    auto d = obj.toGenericDict();
    ASSERT_TRUE(d.contains("generator") && d.contains("critic") && d.contains("extra"));
    auto extra = d.at("extra").toGenericDict();
    EXPECT_EQ(extra.at("step").toInt(), 123456789012);
    EXPECT_EQ(extra.at("neg").toInt(), -7);
    EXPECT_DOUBLE_EQ(extra.at("lr").toDouble(), 1e-5);
    EXPECT_EQ(extra.at("name").toStringRef(), "causvid");
    EXPECT_TRUE(extra.at("flag").toBool());
    EXPECT_TRUE(extra.at("none").isNone());

    core::NamedValues others;
    core::TensorMap flat = core::flatten_tensors(obj, "", &others);
    EXPECT_EQ(others.size(), 6u);
    EXPECT_EQ(flat.size(), s.gen.size() + s.critic.size());
    for (const auto& kv : s.gen)
      expect_same_tensor(flat.at("generator." + kv.first), kv.second, kv.first);
    for (const auto& kv : s.critic)
      expect_same_tensor(flat.at("critic." + kv.first), kv.second, kv.first);
    // Views of one storage still share it.
    const auto& b = flat.at("generator.model.base");
    EXPECT_TRUE(flat.at("generator.model.view_offset").storage().is_alias_of(b.storage()));
    EXPECT_TRUE(flat.at("generator.model.view_t").storage().is_alias_of(b.storage()));
    EXPECT_FALSE(flat.at("generator.model.half").storage().is_alias_of(b.storage()));
  }

  // load_weights flattens the same way; tensors are writable without touching the file.
  core::TensorMap w = core::load_weights(path);
  EXPECT_TRUE(w.count("generator.model.blocks.0.weight"));
  w.at("generator.model.base").fill_(-1);  // copy-on-write page
  core::TensorMap again = core::load_weights(path);
  expect_same_tensor(again.at("generator.model.base"), s.gen.at("model.base"), "base");
}

TEST(TensorIO, FlatStateDictSaveAndLoadWeights) {
  TempDir dir;
  core::TensorMap sd = {{"a.weight", torch::randn({2, 3})}, {"a.bias", torch::randn({2})}};
  core::save_torch_checkpoint(dir.file("flat.pth"), sd);
  core::TensorMap back = core::load_weights(dir.file("flat.pth"));
  ASSERT_EQ(back.size(), 2u);
  for (const auto& kv : sd) expect_same_tensor(back.at(kv.first), kv.second, kv.first);
  // Safetensors go through the same entry point.
  core::save_safetensors(dir.file("flat.safetensors"), sd);
  EXPECT_EQ(core::detect_weight_format(dir.file("flat.safetensors")),
            core::WeightFormat::kSafetensors);
  core::TensorMap st = core::load_weights(dir.file("flat.safetensors"));
  for (const auto& kv : sd) EXPECT_TRUE(torch::equal(st.at(kv.first), kv.second));
}

TEST(TensorIO, SafetensorsMappedAndMisalignedTensors) {
  TempDir dir;
  // "a" (3 bytes) pushes "b" to an offset that is not a multiple of 4: copied, not mapped.
  core::TensorMap sd = {{"a", torch::arange(3, torch::kInt32).to(torch::kUInt8)},
                        {"b", torch::randn({2, 3})},
                        {"c", torch::randn({5}).to(torch::kBFloat16)}};
  const std::string path = dir.file("w.safetensors");
  core::save_safetensors(path, sd);
  for (bool mmap : {true, false}) {
    core::TorchLoadOptions opt;
    opt.mmap = mmap;
    core::TensorMap got = core::load_weights(path, opt);
    ASSERT_EQ(got.size(), 3u);
    for (const auto& kv : sd) expect_same_tensor(got.at(kv.first), kv.second, kv.first);
    got.at("c").add_(1);  // writable
  }
  expect_same_tensor(core::load_weights(path).at("c"), sd.at("c"), "c");
}

TEST(TensorIO, ReadsTorchPickleSaveOutput) {
  // LibTorch's own torch::pickle_save (TorchScript pickler: restore_type_tag wrappers,
  // records written before data.pkl) is a zip checkpoint too.
  TempDir dir;
  auto base = torch::arange(10.0f);
  c10::Dict<std::string, torch::Tensor> inner;
  inner.insert("model.view", base.slice(0, 2, 5));
  inner.insert("model.base", base);
  inner.insert("model.half", torch::ones({2}, torch::kFloat16));
  c10::impl::GenericDict outer(c10::StringType::get(), c10::AnyType::get());
  outer.insert("generator", inner);
  outer.insert("ints", c10::List<int64_t>({1, 2, 3}));
  const std::vector<char> bytes = torch::pickle_save(outer);
  const std::string path = dir.file("pickle_save.pt");
  core::write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
  core::NamedValues others;
  core::TensorMap flat = core::flatten_tensors(core::load_torch_checkpoint(path), "", &others);
  ASSERT_EQ(flat.size(), 3u);
  expect_same_tensor(flat.at("generator.model.view"), base.slice(0, 2, 5), "view");
  expect_same_tensor(flat.at("generator.model.base"), base, "base");
  EXPECT_TRUE(flat.at("generator.model.view")
                  .storage()
                  .is_alias_of(flat.at("generator.model.base").storage()));
  ASSERT_EQ(others.size(), 3u);
  EXPECT_EQ(others[0].first, "ints.0");
}

TEST(TensorIO, SaveRejectsUnsupportedValues) {
  TempDir dir;
  auto bad = core::nested_dict({{"g", c10::IValue(c10::Device(c10::kCPU))}});
  testing::expect_error_contains([&] { core::save_torch_checkpoint(dir.file("x.pt"), bad); },
                                 {dir.file("x.pt"), "cannot save"});
  EXPECT_FALSE(core::file_exists(dir.file("x.pt")));
}

// ---------------------------------------------------------------- Python interop

TEST(TensorIO, ReadsWhatPythonTorchSaveWrites) {
  if (!have_python_torch())
    FAIL() << CAUSVID_PYTHON << " cannot import torch: run scripts/setup.sh";
  TempDir dir;
  std::string py = std::string(kPyDescribe) + R"PY(
d = sys.argv[1]
torch.manual_seed(0)
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 4)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
        self.register_buffer("steps", torch.arange(3))
net = Net()
base = torch.arange(30, dtype=torch.float32)
files = {
  # plain nn.Module state dict (OrderedDict with _metadata)
  "state_dict.pth": net.state_dict(),
  # OrderedDict and every dtype, views with offsets, shared storage, Parameter, 0-d, empty
  "dtypes.pt": collections.OrderedDict([
      ("f32", torch.randn(3, 2)), ("f16", torch.randn(4).half()),
      ("bf16", torch.randn(2, 3).bfloat16()), ("f64", torch.randn(2).double()),
      ("i64", torch.arange(-5, 5)), ("i32", torch.arange(4, dtype=torch.int32)),
      ("u8", torch.arange(250, 256).to(torch.uint8)), ("bool", torch.tensor([True, False])),
      ("base", base), ("view", base[7:13]), ("view2d", base[2:14].view(3, 4).t()),
      ("strided", base[::3]), ("param", torch.nn.Parameter(torch.randn(2))),
      ("scalar", torch.tensor(1.5)), ("empty", torch.zeros(0, 4))]),
  # CausVid's model.pt layout plus non-tensor leaves
  "model.pt": {"generator": {"model." + k: v for k, v in net.state_dict().items()},
               "critic": {"model.x": torch.randn(2, 2).bfloat16()},
               "step": 1000, "name": "run", "cfg": argparse.Namespace(lr=0.5),
               "list": [torch.ones(1), 2, None], "big": 2**40, "neg": -3,
               "f": 0.25, "dtype": torch.bfloat16},
}
for name, obj in files.items():
    torch.save(obj, d + "/" + name)
    json.dump(describe(obj), open(d + "/" + name + ".json", "w"))
# protocol 4 pickles use other opcodes (SHORT_BINUNICODE, MEMOIZE, FRAME, STACK_GLOBAL)
torch.save(files["dtypes.pt"], d + "/proto4.pt", pickle_protocol=4)
json.dump(describe(files["dtypes.pt"]), open(d + "/proto4.pt.json", "w"))
torch.save({"w": torch.ones(2)}, d + "/legacy.pt", _use_new_zipfile_serialization=False)
)PY";
  run_python(dir, py, dir.path());

  for (const std::string name : {"state_dict.pth", "dtypes.pt", "model.pt", "proto4.pt"}) {
    SCOPED_TRACE(name);
    const std::string path = dir.file(name);
    json want = json::parse(core::read_file(path + ".json"));
    core::NamedValues others;
    c10::IValue obj = core::load_torch_checkpoint(path);
    core::TensorMap flat = core::flatten_tensors(obj, "", &others);
    std::map<int, const c10::StorageImpl*> storage_of;  // python storage id -> ours
    size_t num_tensors = 0;
    for (auto it = want["tensors"].begin(); it != want["tensors"].end(); ++it) {
      const std::string key = it.key();
      const json& w = *it;
      if (w.contains("value")) continue;
      ++num_tensors;
      ASSERT_TRUE(flat.count(key)) << key;
      const auto& t = flat.at(key);
      EXPECT_EQ(torch_dtype_name(t.scalar_type()), w["dtype"].get<std::string>()) << key;
      EXPECT_EQ(t.sizes().vec(), w["shape"].get<std::vector<int64_t>>()) << key;
      EXPECT_EQ(t.strides().vec(), w["stride"].get<std::vector<int64_t>>()) << key;
      EXPECT_EQ(t.storage_offset(), w["offset"].get<int64_t>()) << key;
      EXPECT_EQ(hex_bytes(t), w["hex"].get<std::string>()) << key;
      // Same python storage <=> same storage here.
      const int sid = w["storage"].get<int>();
      auto* impl = t.storage().unsafeGetStorageImpl();
      if (storage_of.count(sid)) {
        EXPECT_EQ(storage_of[sid], impl) << key << " lost its storage sharing";
      } else {
        for (const auto& kv : storage_of) EXPECT_NE(kv.second, impl) << key;
        storage_of[sid] = impl;
      }
    }
    EXPECT_EQ(flat.size(), num_tensors);
    if (name == std::string("model.pt")) {
      // CausVid layout: generator.model.* keys, non-tensor leaves exposed, not fatal.
      EXPECT_TRUE(flat.count("generator.model.lin.weight"));
      EXPECT_TRUE(flat.count("generator.model.blocks.1.bias"));
      EXPECT_TRUE(flat.count("list.0"));
      std::map<std::string, c10::IValue> o(others.begin(), others.end());
      EXPECT_EQ(o.at("step").toInt(), 1000);
      EXPECT_EQ(o.at("big").toInt(), int64_t(1) << 40);
      EXPECT_EQ(o.at("neg").toInt(), -3);
      EXPECT_EQ(o.at("name").toStringRef(), "run");
      EXPECT_DOUBLE_EQ(o.at("f").toDouble(), 0.25);
      EXPECT_EQ(o.at("dtype").toStringRef(), "torch.bfloat16");
      EXPECT_EQ(o.at("cfg.__class__").toStringRef(), "argparse.Namespace");
      EXPECT_DOUBLE_EQ(o.at("cfg.lr").toDouble(), 0.5);
      EXPECT_TRUE(o.at("list.2").isNone());
      // Strict load of the generator into the matching module structure works end to end.
      EXPECT_EQ(core::load_weights(path).count("generator.model.steps"), 1u);
    }
  }
  testing::expect_error_contains([&] { core::load_weights(dir.file("legacy.pt")); },
                                 {dir.file("legacy.pt"), "legacy", "not supported"});
}

TEST(TensorIO, PythonTorchLoadReadsWhatWeWrite) {
  if (!have_python_torch())
    FAIL() << CAUSVID_PYTHON << " cannot import torch: run scripts/setup.sh";
  TempDir dir;
  Sample s = make_sample();
  core::save_torch_checkpoint(dir.file("ours.pt"), s.obj);
  // A flat state dict of a LibTorch Linear must load strictly into Python's nn.Linear.
  torch::nn::Linear lin(3, 4);
  core::TensorMap lin_sd;
  for (const auto& p : lin->named_parameters()) lin_sd[p.key()] = p.value().detach();
  core::save_torch_checkpoint(dir.file("linear.pth"), lin_sd);

  std::string py = std::string(kPyDescribe) + R"PY(
d = sys.argv[1]
obj = torch.load(d + "/ours.pt")
assert type(obj) is dict and type(obj["generator"]) is dict, type(obj)
assert obj["extra"] == {"step": 123456789012, "lr": 1e-5, "name": "causvid", "flag": True,
                        "none": None, "neg": -7}, obj["extra"]
g = obj["generator"]
assert g["model.view_t"].storage().data_ptr() == g["model.base"].storage().data_ptr()
json.dump(describe(obj), open(d + "/ours.json", "w"))
lin = torch.nn.Linear(3, 4)
lin.load_state_dict(torch.load(d + "/linear.pth"), strict=True)
x = torch.arange(3.0)
json.dump(lin(x).tolist(), open(d + "/linear_out.json", "w"))
)PY";
  run_python(dir, py, dir.path());

  json got = json::parse(core::read_file(dir.file("ours.json")));
  core::TensorMap flat = core::flatten_tensors(s.obj);
  ASSERT_EQ(got["types"][""].get<std::string>(), "dict");
  size_t num_tensors = 0;
  for (auto it = got["tensors"].begin(); it != got["tensors"].end(); ++it) {
    if (it->contains("value")) continue;
    ++num_tensors;
    const std::string key = it.key();
    ASSERT_TRUE(flat.count(key)) << key;
    const auto& t = flat.at(key);
    EXPECT_EQ(torch_dtype_name(t.scalar_type()), (*it)["dtype"].get<std::string>()) << key;
    EXPECT_EQ(t.sizes().vec(), (*it)["shape"].get<std::vector<int64_t>>()) << key;
    EXPECT_EQ(t.strides().vec(), (*it)["stride"].get<std::vector<int64_t>>()) << key;
    EXPECT_EQ(t.storage_offset(), (*it)["offset"].get<int64_t>()) << key;
    EXPECT_EQ(hex_bytes(t), (*it)["hex"].get<std::string>()) << key;
  }
  EXPECT_EQ(num_tensors, flat.size());
  // Python's Linear with our weights computes what LibTorch's does.
  auto out = json::parse(core::read_file(dir.file("linear_out.json"))).get<std::vector<float>>();
  auto ref = lin->forward(torch::arange(3.0f));
  ASSERT_EQ(out.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(out[i], ref[i].item<float>());
}

// ---------------------------------------------------------------- bad input

// Minimal protocol-2 pickle builder for hand-made corrupt checkpoints.
struct Pkl {
  std::string s = "\x80\x02";
  Pkl& op(const std::string& o) {
    s += o;
    return *this;
  }
  Pkl& str(const std::string& v) {
    s.push_back('X');
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v.size() >> (8 * i)));
    s += v;
    return *this;
  }
  Pkl& i1(int v) {
    s.push_back('K');
    s.push_back(static_cast<char>(v));
    return *this;
  }
  // {"w": _rebuild_tensor_v2(storage(key "0", FloatStorage, numel), offset, size, stride)}
  static std::string tensor_dict(int numel, int offset, std::vector<int> size,
                                 std::vector<int> stride) {
    Pkl p;
    p.op("}").str("w").op("ctorch._utils\n_rebuild_tensor_v2\n(");
    p.op("(").str("storage").op("ctorch\nFloatStorage\n").str("0").str("cpu").i1(numel).op("tQ");
    p.i1(offset).op("(");
    for (int v : size) p.i1(v);
    p.op("t(");
    for (int v : stride) p.i1(v);
    p.op("t\x89}tRs.");
    return p.s;
  }
};

void write_archive(const std::string& path, const std::string& pkl,
                   const std::vector<std::pair<std::string, std::string>>& records) {
  caffe2::serialize::PyTorchStreamWriter w(path);
  w.writeRecord("data.pkl", pkl.data(), pkl.size());
  for (const auto& r : records) w.writeRecord(r.first, r.second.data(), r.second.size());
  w.writeEndOfFile();
}

// Containers nested 150,000 deep (lists, tuples, dicts) or cyclic: a clear error naming the
// file, never a stack overflow in the loader or in the value's destructor.
TEST(TensorIO, DeepOrCyclicPicklesAreErrorsNotCrashes) {
  TempDir dir;
  const int n = 150000;
  auto deep = [&](char open, const std::string& close) {
    std::string pkl = "\x80\x02";
    for (int i = 0; i < n; ++i) pkl += open;
    for (int i = 0; i + 1 < n; ++i) pkl += close;
    return pkl + ".";
  };
  const std::string path = dir.file("deep.pt");
  // Lists: EMPTY_LIST x n, APPEND x (n - 1).
  write_archive(path, deep(']', "a"), {});
  testing::expect_error_contains([&] { core::load_torch_checkpoint(path); },
                                 {"deep.pt", "nested deeper than"});
  // Tuples: EMPTY_TUPLE, then TUPLE1 around it n times.
  std::string tup = "\x80\x02)";
  for (int i = 0; i < n; ++i) tup += "\x85";
  write_archive(path, tup + ".", {});
  testing::expect_error_contains([&] { core::load_torch_checkpoint(path); },
                                 {"deep.pt", "nested deeper than"});
  // A list that contains itself: EMPTY_LIST, BINPUT 0, BINGET 0, APPEND.
  write_archive(path, std::string("\x80\x02]q\x00" "h\x00" "a.", 9), {});
  testing::expect_error_contains([&] { core::load_torch_checkpoint(path); },
                                 {"deep.pt", "cyclic"});
  // Weight loading and inspection go through the same loader.
  write_archive(path, deep(']', "a"), {});
  testing::expect_error_contains([&] { core::load_weights(path); }, {"deep.pt"});
}

TEST(TensorIO, HandMadeArchiveWithOddPrefixLoads) {
  TempDir dir;
  const std::string path = dir.file("odd_prefix_name.pth");  // records under odd_prefix_name/
  std::string bytes(6 * 4, '\0');
  for (int i = 0; i < 6; ++i) {
    float f = static_cast<float>(i);
    std::memcpy(&bytes[4 * i], &f, 4);
  }
  write_archive(path, Pkl::tensor_dict(6, 0, {3, 2}, {1, 3}), {{"data/0", bytes}});
  auto w = core::load_weights(path).at("w");
  EXPECT_TRUE(torch::equal(w, torch::arange(6.0f).view({2, 3}).t()));
}

TEST(TensorIO, CorruptArchivesGiveClearErrors) {
  TempDir dir;
  const std::string p = dir.file("bad.pth");
  const std::string data24(24, '\0');
  // View needs element 5 (offset 0, size (3,2), stride (2,1)) but the storage has 4.
  write_archive(p, Pkl::tensor_dict(4, 0, {3, 2}, {2, 1}), {{"data/0", std::string(16, '\0')}});
  testing::expect_error_contains([&] { core::load_weights(p); },
                                 {p, "needs element 5", "only 4 elements", "near key 'w'"});
  // Offset pushes the view out of the storage.
  write_archive(p, Pkl::tensor_dict(6, 3, {6}, {1}), {{"data/0", data24}});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "needs element 8"});
  // Storage numel larger than its record.
  write_archive(p, Pkl::tensor_dict(100, 0, {6}, {1}), {{"data/0", data24}});
  testing::expect_error_contains([&] { core::load_weights(p); },
                                 {p, "data/0 has 24 bytes", "wants 400"});
  // Record missing.
  write_archive(p, Pkl::tensor_dict(6, 0, {6}, {1}), {});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "data/0", "missing"});
  // Unknown opcode.
  write_archive(p, std::string("\x80\x02}\xff", 4), {});
  testing::expect_error_contains([&] { core::load_weights(p); },
                                 {p, "data.pkl byte 3", "unsupported pickle opcode 0xff"});
  // Stack underflow and a non-storage persistent id.
  write_archive(p, "\x80\x02s.", {});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "stack underflow"});
  write_archive(p, Pkl().op("(").str("storage").op("tQ.").s, {});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "persistent id"});
  // Unsupported tensor kinds are refused, unknown classes are not.
  write_archive(p, Pkl().op("ctorch._utils\n_rebuild_qtensor\n)R.").s, {});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "_rebuild_qtensor"});
  write_archive(p, Pkl().op("cmy.mod\nThing\n)R}").str("a").i1(1).op("sb.").s, {});
  auto obj = core::load_torch_checkpoint(p);
  EXPECT_EQ(obj.toGenericDict().at("__class__").toStringRef(), "my.mod.Thing");
  EXPECT_EQ(obj.toGenericDict().at("a").toInt(), 1);
  // A zip without data.pkl (e.g. a TorchScript archive).
  {
    caffe2::serialize::PyTorchStreamWriter w(p);
    w.writeRecord("constants.pkl", "x", 1);
    w.writeEndOfFile();
  }
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "no data.pkl"});
}

TEST(TensorIO, TruncatedAndGarbageFilesGiveClearErrors) {
  TempDir dir;
  Sample s = make_sample();
  const std::string good = dir.file("good.pt");
  core::save_torch_checkpoint(good, s.obj);
  const std::string bytes = core::read_file(good);
  const std::string cut = dir.file("cut.pt");
  for (size_t keep : {bytes.size() - 1, bytes.size() - 30, bytes.size() / 2, size_t(100),
                      size_t(10), size_t(4)}) {
    SCOPED_TRACE(keep);
    core::write_file_atomic(cut, bytes.substr(0, keep));
    testing::expect_error_contains([&] { core::load_weights(cut); }, {cut});
    testing::expect_error_contains([&] { core::load_torch_checkpoint(cut); }, {cut, "zip"});
  }
  // A truncated pickle inside an intact archive.
  c10::IValue obj = core::load_torch_checkpoint(good);
  {
    caffe2::serialize::PyTorchStreamReader r(good);
    auto pkl = r.getRecord("data.pkl");
    std::string text(static_cast<const char*>(std::get<0>(pkl).get()), std::get<1>(pkl));
    write_archive(cut, text.substr(0, text.size() / 2), {});
    testing::expect_error_contains([&] { core::load_weights(cut); }, {cut, "data.pkl"});
  }
  // Flipped central-directory bytes.
  std::string broken = bytes;
  for (size_t i = broken.size() - 60; i < broken.size() - 10; ++i) broken[i] ^= 0x5a;
  core::write_file_atomic(cut, broken);
  testing::expect_error_contains([&] { core::load_weights(cut); }, {cut});

  // Neither zip nor safetensors; empty; missing; legacy pickle; a directory.
  const std::string txt = dir.file("notes.pth");
  core::write_file_atomic(txt, "hello, this is not a checkpoint\n");
  testing::expect_error_contains([&] { core::load_weights(txt); },
                                 {txt, "not a supported weight file", "safetensors", "zip"});
  const std::string empty = dir.file("empty.pt");
  core::write_file_atomic(empty, "");
  testing::expect_error_contains([&] { core::load_weights(empty); }, {empty, "0 bytes"});
  testing::expect_error_contains([&] { core::load_weights(dir.file("nope.pt")); },
                                 {dir.file("nope.pt"), "cannot open"});
  const std::string legacy = dir.file("legacy.pt");
  core::write_file_atomic(legacy,
                          std::string("\x80\x02\x8a\x0al\xfc\x9c\x46\xf9\x20j\xa8P\x19.", 15));
  testing::expect_error_contains([&] { core::load_weights(legacy); }, {legacy, "legacy"});
  testing::expect_error_contains([&] { core::load_weights(dir.path()); },
                                 {dir.path(), "not a regular file"});
}

TEST(TensorIO, MutatedFilesNeverCrash) {
  // Random byte flips in data.pkl (inside an intact archive) and anywhere in the file: each
  // load either succeeds or throws. CAUSVID_FUZZ_ITERS raises the count for a longer run.
  TempDir dir;
  Sample s = make_sample();
  const std::string good = dir.file("good.pt");
  core::save_torch_checkpoint(good, s.obj);
  const std::string bytes = core::read_file(good);
  std::string pkl;
  std::vector<std::pair<std::string, std::string>> records;
  {
    caffe2::serialize::PyTorchStreamReader r(good);
    for (const auto& name : r.getAllRecords()) {
      auto rec = r.getRecord(name);
      std::string b(static_cast<const char*>(std::get<0>(rec).get()), std::get<1>(rec));
      if (name == "data.pkl")
        pkl = b;
      else if (name.rfind("data/", 0) == 0)
        records.emplace_back(name, b);
    }
  }
  ASSERT_FALSE(pkl.empty());
  const char* env = std::getenv("CAUSVID_FUZZ_ITERS");
  const int iters = env ? std::atoi(env) : 150;
  std::mt19937 rng(1234);
  const std::string p = dir.file("fuzz.pt");
  int loaded = 0, failed = 0;
  for (int i = 0; i < iters; ++i) {
    const bool whole_file = i % 3 == 2;
    std::string m = whole_file ? bytes : pkl;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      const size_t at = rng() % m.size();
      m[at] = static_cast<char>(rng() % 4 == 0 ? rng() : m[at] ^ (1u << (rng() % 8)));
    }
    if (whole_file)
      core::write_file_atomic(p, m);
    else
      write_archive(p, m, records);
    try {
      core::NamedValues others;
      core::TensorMap t = core::flatten_tensors(core::load_torch_checkpoint(p), "", &others);
      for (auto& kv : t) kv.second.sum();  // touch the bytes of every view
      ++loaded;
    } catch (const std::exception& e) {
      ++failed;
    }
  }
  std::printf("  %d mutated files: %d loaded, %d rejected with an error\n", iters, loaded, failed);
}

// ---------------------------------------------------------------- causvid inspect

TEST(TensorIO, InspectPrintsKeysShapesAndTotals) {
  TempDir dir;
  Sample s = make_sample();
  const std::string pt = dir.file("model.pt");
  core::save_torch_checkpoint(pt, s.obj);
  const std::string bin = testing::causvid_binary();
  std::string out;
  ASSERT_EQ(testing::run_command(bin + " inspect " + pt, &out), 0) << out;
  EXPECT_NE(out.find("generator.model.blocks.0.weight"), std::string::npos) << out;
  EXPECT_NE(out.find("[4, 3]"), std::string::npos) << out;
  EXPECT_NE(out.find("BF16"), std::string::npos) << out;
  EXPECT_NE(out.find("extra.step = 123456789012"), std::string::npos) << out;
  int64_t params = 0, bytes = 0;
  for (const auto& kv : core::flatten_tensors(s.obj)) {
    params += kv.second.numel();
    bytes += kv.second.numel() * kv.second.element_size();
  }
  EXPECT_NE(out.find("total: 15 tensors, " + std::to_string(params) + " parameters"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(std::to_string(bytes) + " bytes"), std::string::npos) << out;

  ASSERT_EQ(testing::run_command(bin + " inspect --filter critic. --max-keys 2 " + pt, &out), 0);
  EXPECT_EQ(out.find("generator."), std::string::npos) << out;
  EXPECT_NE(out.find("7 more tensors not shown"), std::string::npos) << out;
  EXPECT_NE(out.find("total: 9 tensors"), std::string::npos) << out;

  const std::string st = dir.file("w.safetensors");
  core::save_safetensors(st, {{"a", torch::zeros({2, 3}, torch::kBFloat16)}}, {{"format", "pt"}});
  ASSERT_EQ(testing::run_command(bin + " inspect " + st, &out), 0) << out;
  EXPECT_NE(out.find("safetensors"), std::string::npos) << out;
  EXPECT_NE(out.find("total: 1 tensors, 6 parameters"), std::string::npos) << out;
  EXPECT_NE(out.find("12 bytes"), std::string::npos) << out;

  // Bad input: non-zero exit and a message naming the file.
  const std::string bad = dir.file("bad.pth");
  core::write_file_atomic(bad, core::read_file(pt).substr(0, 200));
  EXPECT_NE(testing::run_command(bin + " inspect " + bad, &out), 0);
  EXPECT_NE(out.find(bad), std::string::npos) << out;
  EXPECT_NE(testing::run_command(bin + " inspect " + dir.file("missing.pt"), &out), 0);
  EXPECT_NE(out.find("cannot open"), std::string::npos) << out;
  EXPECT_NE(testing::run_command(bin + " inspect --max-keys x " + pt, &out), 0);
}

}  // namespace
}  // namespace causvid
