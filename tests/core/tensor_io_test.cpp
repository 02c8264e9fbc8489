// tests/core/tensor_io_test.cpp: torch.save zip checkpoints (read, write, Python interop with
// the pinned torch wheel's Python) and load_weights dispatch. Corrupt files and `causvid
// inspect`: tensor_io_corrupt_test.cpp.
#include "core/tensor_io.h"

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/fs.h"
#include "core/safetensors.h"
#include "tests/core/tensor_io_test_util.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using namespace tio_test;  // NOLINT: the shared helpers
using testing::TempDir;
using json = nlohmann::json;

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

// Every tensor of `want` (the Python describe() json) is in `flat` with the same dtype, shape,
// strides, offset and bytes, and storage sharing is the same.
void expect_matches_python(const core::TensorMap& flat, const json& want) {
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
}

// CausVid layout: generator.model.* keys, non-tensor leaves exposed, not fatal.
void expect_causvid_layout(const core::TensorMap& flat, const core::NamedValues& others,
                           const std::string& path) {
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
    expect_matches_python(flat, want);
    if (name == std::string("model.pt")) expect_causvid_layout(flat, others, path);
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

}  // namespace
}  // namespace causvid
