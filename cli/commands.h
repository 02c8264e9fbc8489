// cli/commands.h: the subcommands of the `causvid` binary. Each cli/*_command.cpp parses its
// flags with CLI11 (cli/options.h) and calls the library; add_*_commands registers them.
#pragma once

#include <cstdint>
#include <string>

#include "cli/options.h"
#include "toy/world.h"

namespace causvid::cli {

void add_smoke_commands(Commands& c);     // cli/smoke_command.cpp: smoke, check-fixtures
void add_inspect_commands(Commands& c);   // cli/inspect_command.cpp: inspect, config
void add_bench_commands(Commands& c);     // cli/bench_command.cpp: bench NAME
void add_train_commands(Commands& c);     // cli/train_command.cpp: plan, train, export
void add_data_commands(Commands& c);      // cli/data_command.cpp: lmdb, preprocess, encode
void add_teacher_data_commands(Commands& c);  // cli/embed_command.cpp: embed-prompts, ode-pairs
// cli/generate_command.cpp: generate, eval (vbench here; eval toy from cli/toy_command.cpp)
void add_generate_commands(Commands& c);
void add_toy_commands(Commands& c);       // cli/toy_command.cpp: toy data|eval|preview|run|probe
void add_lora_commands(Commands& c);      // cli/lora_command.cpp: lora merge|extract|inspect

// `causvid toy data`, also run by `causvid toy run` (cli/toy_run_command.cpp).
struct ToyDataArgs {
  std::string out;
  int64_t num = 4096, seed = 0, frames = toy::WorldSpec{}.frames, height = toy::WorldSpec{}.height,
          width = toy::WorldSpec{}.width, speed = toy::WorldSpec{}.speed, align = toy::WorldSpec{}.align;
  bool overwrite = false;
  bool wrap = !toy::WorldSpec{}.wrap_free;  // start positions anywhere on the torus
};
int run_toy_data(const ToyDataArgs& a);
// `causvid toy run` (cli/toy_run_command.cpp) and `eval toy` (cli/toy_command.cpp).
void add_toy_run_command(Commands& c, CLI::App* toy);
void add_toy_probe_command(Commands& c, CLI::App* toy);  // cli/toy_probe_command.cpp
void add_eval_toy_command(Commands& c, CLI::App* parent, const std::string& name);  // "toy" under eval, "eval" under toy

}  // namespace causvid::cli
