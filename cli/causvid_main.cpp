// cli/causvid_main.cpp: the `causvid` binary, a dispatcher over subcommands.
// Errors thrown by any subcommand are caught here: logged, exit code 1.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/log.h"
#include "core/runtime.h"

namespace {

struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* help;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"smoke", causvid::cli::smoke_main,
       "tiny bidirectional + causal forward/generation run on an embedded default"},
      {"inspect", causvid::cli::inspect_main,
       "print keys, shapes, dtypes, parameter count and bytes of a weight file"},
      {"check-fixtures", causvid::cli::check_fixtures_main,
       "run the golden fixture checks on fixture directories"},
      {"config", causvid::cli::config_main, "print the resolved, validated config (--set k=v)"},
      {"bench", causvid::cli::bench_main, "benchmarks (bench dit ...)"},
      {"embed-prompts", causvid::cli::embed_prompts_main,
       "encode a prompt file with umT5 into an LMDB prompt-embedding cache"},
      {"plan", causvid::cli::plan_main, "per-rank memory of params/grads/optimizer under sharding"},
      {"train", causvid::cli::train_main, "train the stage a config describes (dmd | ode | diffusion)"},
      {"export", causvid::cli::export_main, "checkpoint directory -> model.pt (CausVid) or safetensors"},
      {"lmdb", causvid::cli::lmdb_main, "LMDB info / build from latent shards (create_lmdb_iterative)"},
      {"preprocess", causvid::cli::preprocess_main, "videos -> 16:9, 832x480, 16 fps, 81 frames"},
      {"encode", causvid::cli::encode_main, "videos + captions -> VAE latent shards"},
      {"ode-pairs", causvid::cli::ode_pairs_main, "teacher ODE trajectories per prompt -> shards"},
      {"generate", causvid::cli::generate_main, "text/image/video to video (causal streaming, long, v2v, i2v)"},
      {"eval", causvid::cli::eval_main, "evaluation: eval vbench (generate + C++ metrics) | eval toy (toy world metric)"},
      {"toy", causvid::cli::toy_main, "the CPU toy world: toy data | toy eval | toy preview"},
  };
  return kCommands;
}

void print_usage() {
  std::printf("usage: causvid COMMAND [options]   (causvid COMMAND --help for details)\n\n");
  std::printf("causvid-cpp: CausVid autoregressive video diffusion distillation in C++.\n\n");
  std::printf("commands:\n");
  for (const auto& c : commands()) std::printf("  %-16s %s\n", c.name, c.help);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  causvid::core::init_process();
  for (const auto& c : commands()) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      std::string prog = std::string("causvid ") + c.name;
      std::vector<char*> args(argv + 1, argv + argc);
      args[0] = prog.data();
      return c.fn(static_cast<int>(args.size()), args.data());
    } catch (const c10::Error& e) {
      LOG_ERROR("%s: %s", c.name, e.what_without_backtrace());
      return 1;
    } catch (const std::exception& e) {
      LOG_ERROR("%s: %s", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "causvid: unknown command '%s'\n\n", argv[1]);
  print_usage();
  return 2;
}
