// trainer/stages/builtin_stages.cpp: the stages `causvid train` knows by name (stage.h).
// A new stage: its file defines register_<name>_stage(); add one line here.
#include "trainer/stage.h"

namespace causvid::trainer {

void register_dmd_stage();
void register_ode_stage();
void register_diffusion_stage();
void register_self_forcing_stage();
void register_teacher_forcing_stage();

void register_builtin_stages() {
  register_dmd_stage();
  register_ode_stage();
  register_diffusion_stage();
  register_self_forcing_stage();
  register_teacher_forcing_stage();
}

}  // namespace causvid::trainer
