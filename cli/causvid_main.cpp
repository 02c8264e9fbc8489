// cli/causvid_main.cpp: the `causvid` binary, CLI11 subcommands (cli/options.h). Errors
// thrown by a subcommand are caught in Commands::run: logged, exit code 1; a bad command
// line exits 2 with a message naming the flag.
#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace causvid::cli;
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
  return c.run(argc, argv);
}
