// checks/kinds.h: the check function of each implemented fixture kind. Each lives in
// checks/<area>_checks.cpp and is listed in the table of checks/fixture_kinds.cpp.
#pragma once

#include "checks/fixtures.h"

namespace causvid::checks {

void check_wan_dit(const Fixture& f, FixtureReport& r);
void check_causal_wan_train(const Fixture& f, FixtureReport& r);
void check_causal_wan_kv(const Fixture& f, FixtureReport& r);
void check_flow_match(const Fixture& f, FixtureReport& r);
void check_dmd_loss(const Fixture& f, FixtureReport& r);
void check_critic_loss(const Fixture& f, FixtureReport& r);
void check_ode_loss(const Fixture& f, FixtureReport& r);
void check_teacher_sampling(const Fixture& f, FixtureReport& r);
void check_umt5_encoder(const Fixture& f, FixtureReport& r);
void check_umt5_tokenizer(const Fixture& f, FixtureReport& r);
void check_wan_vae(const Fixture& f, FixtureReport& r);  // checks/vae_checks.cpp
void check_train_step(const Fixture& f, FixtureReport& r);  // checks/train_step_checks.cpp
void check_self_forcing_rollout(const Fixture& f, FixtureReport& r);  // checks/self_forcing_checks.cpp
void check_diffusers_wan_dit(const Fixture& f, FixtureReport& r);  // checks/layout_checks.cpp
void check_comfyui_wan_dit(const Fixture& f, FixtureReport& r);
void check_lora_wan_dit(const Fixture& f, FixtureReport& r);
void check_diffusers_wan_vae(const Fixture& f, FixtureReport& r);  // checks/vae_checks.cpp
void check_hf_umt5_encoder(const Fixture& f, FixtureReport& r);    // checks/t5_checks.cpp
void check_hf_umt5_tokenizer(const Fixture& f, FixtureReport& r);

}  // namespace causvid::checks
