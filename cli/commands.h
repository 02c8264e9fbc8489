// cli/commands.h: the subcommands of the `causvid` binary. Each is implemented in a thin
// *_main.cpp beside the code it drives and returns the process exit code.
#pragma once

namespace causvid::cli {

int inspect_main(int argc, char** argv);         // core/inspect_main.cpp
int check_fixtures_main(int argc, char** argv);  // checks/check_fixtures_main.cpp
int bench_main(int argc, char** argv);           // bench/bench_main.cpp
int smoke_main(int argc, char** argv);           // inference/smoke_main.cpp
int config_main(int argc, char** argv);          // core/config_main.cpp
int embed_prompts_main(int argc, char** argv);   // data/embed_prompts_main.cpp
int plan_main(int argc, char** argv);            // trainer/plan_main.cpp
int train_main(int argc, char** argv);           // trainer/train_main.cpp
int export_main(int argc, char** argv);          // trainer/train_main.cpp
int lmdb_main(int argc, char** argv);            // data/lmdb_main.cpp
int preprocess_main(int argc, char** argv);      // data/preprocess_main.cpp
int encode_main(int argc, char** argv);          // data/encode_main.cpp
int ode_pairs_main(int argc, char** argv);       // data/ode_pairs_main.cpp
int generate_main(int argc, char** argv);        // inference/generate_main.cpp
int eval_main(int argc, char** argv);            // inference/eval_main.cpp
int toy_main(int argc, char** argv);             // toy/toy_main.cpp (data|eval|preview)
int eval_toy_main(int argc, char** argv);        // toy/eval_toy_main.cpp (`eval toy`)

}  // namespace causvid::cli
