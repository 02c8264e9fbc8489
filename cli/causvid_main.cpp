// cli/causvid_main.cpp: the `causvid` binary, CLI11 subcommands (cli/options.h). Errors
// thrown by a subcommand are caught in Commands::run: logged, exit code 1; a bad command
// line exits 2 with a message naming the flag.
#include "cli/commands.h"
#include "inference/generate.h"
#include "models/wan/presets.h"
#include "toy/text_encoder.h"

int main(int argc, char** argv) {
  using namespace causvid::cli;
  // What the layers register from above: the presets' config check, the hash and toy text
  // encoders (tests/test_main.cpp does the same).
  causvid::models::register_builtins();
  causvid::inference::register_builtins();
  causvid::toy::register_builtins();
  Commands c("causvid",
             "causvid-cpp: CausVid autoregressive video diffusion distillation in C++.");
  add_smoke_commands(c);
  add_inspect_commands(c);
  add_bench_commands(c);
  add_teacher_data_commands(c);
  add_train_commands(c);
  add_data_commands(c);
  add_generate_commands(c);
  add_toy_commands(c);
  add_lora_commands(c);
  return c.run(argc, argv);
}
