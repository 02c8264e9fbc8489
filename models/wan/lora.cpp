// models/wan/lora.cpp: see lora.h.
#include "models/wan/lora.h"

#include <nlohmann/json.hpp>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>

#include "core/log.h"
#include "core/state_dict.h"
#include "models/wan/wan_layouts.h"

namespace causvid::models {
namespace {

const std::string kComfy = "diffusion_model.", kPeft = "transformer.";

// (module, field) of a LoRA key with its layout prefix removed, or field "" when unknown.
std::pair<std::string, std::string> split_key(const std::string& key) {
  static const std::vector<std::pair<std::string, std::string>> kSuffixes = {
      {".lora_down.weight", "down"}, {".lora_A.weight", "down"}, {".lora_up.weight", "up"},
      {".lora_B.weight", "up"},      {".lora_B.bias", "up_bias"}, {".alpha", "alpha"},
      {".diff_b", "diff_b"},         {".diff", "diff"}};
  for (const auto& [suffix, field] : kSuffixes)
    if (ends_with(key, suffix)) return {key.substr(0, key.size() - suffix.size()), field};
  return {key, ""};
}

// diffusers' module name -> ours, through the DiT's KeyTable.
std::string peft_module_to_ours(const std::string& module, const std::string& source) {
  const std::string w = diffusers_wan_dit_table().to_ours(module + ".weight", source);
  return w.substr(0, w.size() - 7);
}

std::optional<double> peft_alpha(const std::map<std::string, std::string>& meta,
                                 const std::string& source) {
  auto it = meta.find("lora_adapter_metadata");
  if (it == meta.end()) return std::nullopt;
  auto j = nlohmann::json::parse(it->second, nullptr, false);
  TORCH_CHECK(j.is_object(), source, ": lora_adapter_metadata is not a JSON object");
  for (const char* k : {"transformer.alpha_pattern", "transformer.rank_pattern"})
    TORCH_CHECK(!j.contains(k) || j[k].is_null() || j[k].empty(), source, ": metadata '", k,
                "' is set (per-module alpha / rank patterns are not supported)");
  TORCH_CHECK(!j.value("transformer.use_dora", false) && !j.value("transformer.use_rslora", false),
              source, ": DoRA / rsLoRA adapters are not supported (plain LoRA only)");
  if (j.contains("transformer.lora_alpha") && j["transformer.lora_alpha"].is_number())
    return j["transformer.lora_alpha"].get<double>();
  return std::nullopt;
}

// The tensor a .diff applies to: "<target>.weight", or "<target>" itself for parameters not
// named weight (e.g. blocks.0.modulation).
std::string diff_key(const core::TensorMap& sd, const std::string& target) {
  return sd.count(target + ".weight") || !sd.count(target) ? target + ".weight" : target;
}

}  // namespace

LoraFile read_lora(const std::string& path) {
  core::SafetensorsFile f(path);
  LoraFile out;
  out.source = path;
  std::map<std::string, LoraModule> mods;
  std::vector<std::string> bad;
  bool comfy = false, peft = false;
  for (const auto& key : f.keys()) {
    std::string rest;
    if (starts_with(key, kComfy)) comfy = true, rest = key.substr(kComfy.size());
    else if (starts_with(key, kPeft)) peft = true, rest = key.substr(kPeft.size());
    else if (starts_with(key, "base_model.model.")) peft = true, rest = key.substr(17);
    else { bad.push_back(key); continue; }
    auto [module, field] = split_key(rest);
    if (field.empty()) { bad.push_back(key); continue; }
    if (peft && !comfy) module = peft_module_to_ours(module, path);
    auto& m = mods[module];
    m.target = module;
    auto t = f.tensor(key);
    if (field == "down") m.down = t;
    else if (field == "up") m.up = t;
    else if (field == "up_bias") m.up_bias = t;
    else if (field == "alpha") m.alpha = t.to(torch::kFloat64).item<double>();
    else if (field == "diff_b") m.diff_b = t;
    else m.diff = t;
  }
  TORCH_CHECK(bad.empty(), path, ": ", bad.size(), " key(s) in no LoRA layout, e.g. '", bad.front(),
              "' (want diffusion_model.<module>.lora_down/lora_up.weight/.alpha or "
              "transformer.<module>.lora_A/lora_B.weight)");
  TORCH_CHECK(!(comfy && peft), path, ": mixes diffusion_model. and transformer. keys");
  TORCH_CHECK(!mods.empty(), path, ": no LoRA tensors");
  out.format = comfy ? "comfyui" : "peft";
  const auto meta_alpha = peft ? peft_alpha(f.metadata(), path) : std::nullopt;
  std::vector<std::string> with_alpha, without_alpha;
  for (auto& [name, m] : mods) {
    TORCH_CHECK(m.down.defined() == m.up.defined(), path, ": '", name, "' has ",
                m.down.defined() ? "lora_down / lora_A" : "lora_up / lora_B", " but not ",
                m.down.defined() ? "lora_up / lora_B" : "lora_down / lora_A");
    if (!m.down.defined()) continue;
    TORCH_CHECK(m.down.dim() == 2 && m.up.dim() == 2 && m.down.size(0) == m.up.size(1), path,
                ": '", name, "': rank mismatch: down ", m.down.sizes(), ", up ", m.up.sizes(),
                " (want [r, in] and [out, r])");
    (m.alpha > 0 ? with_alpha : without_alpha).push_back(name);
  }
  TORCH_CHECK(with_alpha.empty() || without_alpha.empty(), path, ": ", without_alpha.size(),
              " module(s) lack '.alpha' while ", with_alpha.size(), " have it, e.g. '",
              without_alpha.front(), ".alpha' is missing (a file with no alpha at all means "
              "alpha = rank; a partial one is ambiguous)");
  for (auto& [name, m] : mods) {
    if (m.down.defined()) {
      if (meta_alpha) m.alpha = *meta_alpha;
      if (m.alpha <= 0) m.alpha = static_cast<double>(m.rank());
    }
    out.modules.push_back(m);
  }
  if (with_alpha.empty() && !meta_alpha)
    LOG_INFO("lora %s: no alpha in the file: alpha = rank (factor 1) for every module", path);
  return out;
}

void check_lora(const LoraFile& lora, const core::TensorMap& sd) {
  std::vector<std::string> problems;
  int64_t blocks = 0;
  while (sd.count("blocks." + std::to_string(blocks) + ".modulation")) ++blocks;
  auto shape_of = [&](const std::string& k) -> std::optional<std::vector<int64_t>> {
    auto it = sd.find(k);
    if (it == sd.end()) return std::nullopt;
    return it->second.sizes().vec();
  };
  auto need = [&](const std::string& key, const std::string& what, std::vector<int64_t> want) {
    auto got = shape_of(key);
    std::ostringstream s;
    if (!got) {
      s << "'" << what << "' targets '" << key << "', which the model does not have";
      if (starts_with(key, "blocks.")) s << " (the model has " << blocks << " blocks)";
    } else if (*got != want) {
      s << "'" << what << "' gives " << c10::IntArrayRef(want) << " for '" << key
        << "', the model has " << c10::IntArrayRef(*got);
    } else {
      return;
    }
    problems.push_back(s.str());
  };
  for (const auto& m : lora.modules) {
    const std::string w = m.target + ".weight", b = m.target + ".bias";
    if (m.down.defined()) {
      auto ws = shape_of(w);
      if (!ws || ws->size() != 2) {
        need(w, m.target + ".lora_down/up", {m.up.size(0), m.down.size(1)});
      } else {
        if (m.up.size(0) != (*ws)[0] || m.down.size(1) != (*ws)[1])
          problems.push_back("'" + m.target + "': lora_up " + c10::str(m.up.sizes()) +
                             " / lora_down " + c10::str(m.down.sizes()) + " do not fit weight " +
                             c10::str(c10::IntArrayRef(*ws)));
      }
    }
    if (m.up_bias.defined()) need(b, m.target + ".lora_B.bias", m.up_bias.sizes().vec());
    if (m.diff_b.defined()) need(b, m.target + ".diff_b", m.diff_b.sizes().vec());
    if (m.diff.defined()) need(diff_key(sd, m.target), m.target + ".diff", m.diff.sizes().vec());
  }
  if (problems.empty()) return;
  std::string msg;
  for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  " + problems[i];
  TORCH_CHECK(false, lora.source, ": ", problems.size(), " LoRA entr",
              problems.size() == 1 ? "y does" : "ies do", " not fit the model:", msg);
}

void merge_lora(core::TensorMap& weights, const LoraFile& lora, double scale) {
  check_lora(lora, weights);
  torch::NoGradGuard ng;
  auto add = [&](const std::string& key, const torch::Tensor& delta) {
    auto& t = weights.at(key);
    t = (t.to(torch::kFloat32) + delta.to(t.device(), torch::kFloat32)).to(t.scalar_type());
  };
  for (const auto& m : lora.modules) {
    const double f = m.down.defined() ? scale * m.alpha / static_cast<double>(m.rank()) : 0;
    if (m.down.defined())
      add(m.target + ".weight", torch::mm(m.up.to(torch::kFloat32), m.down.to(torch::kFloat32)) * f);
    if (m.up_bias.defined()) add(m.target + ".bias", m.up_bias.to(torch::kFloat32) * f);
    if (m.diff_b.defined()) add(m.target + ".bias", m.diff_b.to(torch::kFloat32) * scale);
    if (m.diff.defined()) add(diff_key(weights, m.target), m.diff.to(torch::kFloat32) * scale);
  }
}

void save_lora(const std::string& path, const LoraFile& lora, const std::string& format) {
  core::TensorMap out;
  TORCH_CHECK(format == "comfyui" || format == "peft", "lora format '", format,
              "': want comfyui | peft");
  for (const auto& m : lora.modules) {
    if (format == "comfyui") {
      const std::string p = kComfy + m.target;
      if (m.down.defined()) {
        out[p + ".lora_down.weight"] = m.down.contiguous();
        out[p + ".lora_up.weight"] = m.up.contiguous();
        out[p + ".alpha"] = torch::tensor(static_cast<float>(m.alpha));
      }
      TORCH_CHECK(!m.up_bias.defined() || m.diff_b.defined() == false, path, ": '", m.target,
                  "' has both a lora_B.bias and a .diff_b");
      if (m.up_bias.defined())
        out[p + ".diff_b"] = (m.up_bias.to(torch::kFloat32) * (m.alpha / m.rank())).to(m.up_bias.scalar_type());
      if (m.diff_b.defined()) out[p + ".diff_b"] = m.diff_b.contiguous();
      if (m.diff.defined()) out[p + ".diff"] = m.diff.contiguous();
      continue;
    }
    TORCH_CHECK(!m.diff.defined() && !m.diff_b.defined(), path, ": '", m.target,
                "' has .diff / .diff_b tensors, which the peft layout cannot hold; write comfyui");
    const std::string w = diffusers_wan_dit_table().to_foreign(m.target + ".weight", path);
    const std::string p = kPeft + w.substr(0, w.size() - 7);
    const double f = m.alpha / static_cast<double>(m.rank());
    out[p + ".lora_A.weight"] = m.down.contiguous();
    out[p + ".lora_B.weight"] = (m.up.to(torch::kFloat32) * f).to(m.up.scalar_type());
    if (m.up_bias.defined())
      out[p + ".lora_B.bias"] = (m.up_bias.to(torch::kFloat32) * f).to(m.up_bias.scalar_type());
  }
  core::save_safetensors(path, out, {{"format", "pt"}});
}

std::pair<std::string, double> parse_lora_spec(const std::string& spec) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon + 1 == spec.size()) return {spec, 1.0};
  const std::string tail = spec.substr(colon + 1);
  char* end = nullptr;
  const double scale = std::strtod(tail.c_str(), &end);
  if (end == tail.c_str() + tail.size() && std::isfinite(scale)) return {spec.substr(0, colon), scale};
  // No number after the colon: a file name with a colon in it.
  return {spec, 1.0};
}

void merge_lora_specs(core::TensorMap& weights, const std::vector<std::string>& specs) {
  for (const auto& spec : specs) {
    auto [file, scale] = parse_lora_spec(spec);
    auto lora = read_lora(file);
    merge_lora(weights, lora, scale);
    LOG_INFO("lora %s (%s, %d modules) merged at scale %g", file, lora.format,
             static_cast<int64_t>(lora.modules.size()), scale);
  }
}

void merge_loras_into(torch::nn::Module& model, const std::vector<std::string>& specs) {
  if (specs.empty()) return;
  auto sd = core::state_dict(model);  // merge_lora replaces entries, never writes through
  merge_lora_specs(sd, specs);
  core::LoadOptions opt;
  opt.source = "--lora";
  core::load_state_dict(model, sd, opt);
}

LoraFile extract_lora(const core::TensorMap& base, const core::TensorMap& tuned,
                      const ExtractOptions& o, ExtractReport* report) {
  TORCH_CHECK(o.rank >= 1, "--rank: got ", o.rank, ", want >= 1");
  const std::regex targets(o.targets);
  LoraFile out;
  out.format = "comfyui";
  ExtractReport rep;
  double energy_sum = 0;
  std::map<std::string, LoraModule> mods;
  for (const auto& [k, t] : tuned) {
    auto it = base.find(k);
    TORCH_CHECK(it != base.end(), "lora extract: '", k, "' is in the tuned model, not the base");
    TORCH_CHECK(it->second.sizes() == t.sizes(), "lora extract: '", k, "': base ",
                it->second.sizes(), ", tuned ", t.sizes());
    auto d = t.to(torch::kFloat32) - it->second.to(torch::kFloat32);
    if (!d.any().item<bool>()) continue;
    const bool weight = ends_with(k, ".weight"), bias = ends_with(k, ".bias");
    const std::string module = weight || bias ? k.substr(0, k.rfind('.')) : k;
    auto& m = mods[module];
    m.target = module;
    if (weight && d.dim() == 2 && std::regex_match(module, targets)) {
      torch::Tensor U, S, Vh;
      std::tie(U, S, Vh) = torch::linalg_svd(d.to(torch::kFloat64), /*full_matrices=*/false);
      const int64_t r = std::min<int64_t>(o.rank, S.size(0));
      m.up = (U.slice(1, 0, r) * S.slice(0, 0, r)).to(torch::kFloat32).contiguous();
      m.down = Vh.slice(0, 0, r).to(torch::kFloat32).contiguous();
      m.alpha = static_cast<double>(r);
      const double all = S.square().sum().item<double>();
      const double kept = S.slice(0, 0, r).square().sum().item<double>();
      const double e = all > 0 ? kept / all : 1.0;
      rep.modules.push_back({module, r, e});
      rep.min_energy = std::min(rep.min_energy, e);
      energy_sum += e;
    } else if (o.diffs) {
      (bias ? m.diff_b : m.diff) = d;
      ++rep.diff_tensors;
    } else {
      ++rep.dropped_tensors;
    }
  }
  for (auto& [name, m] : mods)
    if (m.down.defined() || m.diff.defined() || m.diff_b.defined()) out.modules.push_back(m);
  rep.mean_energy = rep.modules.empty() ? 1 : energy_sum / rep.modules.size();
  if (report) *report = rep;
  return out;
}

}  // namespace causvid::models
