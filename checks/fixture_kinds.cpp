// checks/fixture_kinds.cpp: the table of fixture kinds. A kind whose issue has not landed
// has an empty function: check-fixtures reports it "not implemented" (non-zero exit) and
// the ctest suite skips it visibly. Kinds not in this table fail everywhere.
#include "checks/kinds.h"

namespace causvid::checks {

const std::vector<KindInfo>& fixture_kinds() {
  static const std::vector<KindInfo> kKinds = {
      {"wan_dit", check_wan_dit, "#2"},
      {"causal_wan_train", check_causal_wan_train, "#2"},
      {"causal_wan_kv", check_causal_wan_kv, "#2"},
      {"flow_match", check_flow_match, "#2"},
      {"dmd_loss", check_dmd_loss, "#5"},
      {"critic_loss", check_critic_loss, "#5"},
      {"ode_loss", check_ode_loss, "#5"},
      {"teacher_sampling", check_teacher_sampling, "#5"},
      {"umt5_encoder", check_umt5_encoder, "#3"},
      {"umt5_tokenizer", check_umt5_tokenizer, "#3"},
      {"wan_vae", check_wan_vae, "#3"},
      {"train_step", check_train_step, "#12"},
      {"self_forcing_rollout", check_self_forcing_rollout, "#13"},
      {"diffusers_wan_dit", check_diffusers_wan_dit, "#15"},
      {"comfyui_wan_dit", check_comfyui_wan_dit, "#15"},
      {"lora_wan_dit", check_lora_wan_dit, "#15"},
      {"diffusers_wan_vae", check_diffusers_wan_vae, "#15"},
      {"hf_umt5_encoder", check_hf_umt5_encoder, "#15"},
      {"hf_umt5_tokenizer", check_hf_umt5_tokenizer, "#15"},
      {"umt5_encoder", nullptr, "#3"},
      {"umt5_tokenizer", nullptr, "#3"},
      {"dmd_loss", nullptr, "#5"},
      {"critic_loss", nullptr, "#5"},
      {"ode_loss", nullptr, "#5"},
      {"teacher_sampling", nullptr, "#5"},
  };
  return kKinds;
}

const KindInfo* find_kind(const std::string& kind) {
  for (const auto& k : fixture_kinds())
    if (k.kind == kind) return &k;
  return nullptr;
}

}  // namespace causvid::checks
