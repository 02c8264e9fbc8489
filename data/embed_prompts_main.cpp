// data/embed_prompts_main.cpp: `causvid embed-prompts`, precomputes umT5 prompt embeddings
// into an LMDB prompt cache (data/prompt_cache.h) so training and inference need not hold
// the 5.7B-parameter encoder. Thin: parse, build, run.
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "core/args.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/prompt_cache.h"
#include "models/t5/umt5.h"

namespace causvid::cli {

int embed_prompts_main(int argc, char** argv) {
  core::ArgParser p("causvid embed-prompts",
                    "Encode every line of a prompt file with umT5 and store the embeddings "
                    "(valid rows only) in an LMDB prompt cache.");
  auto& prompts_path = p.flag("--prompts", "", "prompt file: one UTF-8 prompt per line");
  auto& out = p.flag("--out", "", "output cache directory (LMDB), written atomically");
  auto& encoder = p.flag("--encoder", "",
                         "umT5 encoder weights (.safetensors; models_t5_umt5-xxl-enc-bf16 keys)");
  auto& tokenizer = p.flag("--tokenizer", "",
                           "sentencepiece model or google/umt5-xxl folder (spiece.model)");
  auto& preset = p.flag("--preset", "xxl",
                        "xxl (needs --encoder, --tokenizer) or tiny (random tiny encoder, for "
                        "tests; byte tokenizer unless --tokenizer)");
  auto& dtype = p.flag("--dtype", "bf16", "stored dtype: bf16, fp16 or fp32");
  auto& compute = p.flag("--compute-dtype", "fp32", "encoder dtype: fp32 or bf16");
  auto& device = p.flag("--device", "cpu", "auto, cpu, cuda or cuda:N");
  auto& text_len = p.flag("--text-len", "512", "token positions per prompt (Wan: 512)");
  auto& batch = p.flag("--batch-size", "8", "prompts per encoder call");
  auto& seed = p.flag("--seed", "0", "weight seed of the tiny preset");
  auto& overwrite = p.toggle("--overwrite", "replace an existing --out");
  if (!p.parse(argc, argv)) return p.exit_code();
  TORCH_CHECK(!prompts_path.empty(), "--prompts: required");
  TORCH_CHECK(!out.empty(), "--out: required");
  TORCH_CHECK(preset == "xxl" || preset == "tiny", "--preset: got '", preset,
              "', want xxl or tiny");
  const auto store_dtype = data::parse_embed_dtype("--dtype", dtype);
  const auto compute_dtype = data::parse_embed_dtype("--compute-dtype", compute);
  const int64_t seq = core::ArgParser::to_int("--text-len", text_len);
  TORCH_CHECK(seq >= 1, "--text-len: got ", seq, ", want >= 1");
  const auto dev = core::resolve_device(device);

  auto prompts = data::read_prompt_file(prompts_path);
  LOG_INFO("%d prompts from %s", prompts.size(), prompts_path);

  std::shared_ptr<models::UMT5Tokenizer> tok;
  if (!tokenizer.empty()) {
    tok = std::make_shared<models::UMT5Tokenizer>(tokenizer, seq);
  } else {
    TORCH_CHECK(preset == "tiny", "--tokenizer: required with --preset xxl (the google/umt5-xxl "
                                  "folder or its spiece.model)");
    tok = std::shared_ptr<models::UMT5Tokenizer>(models::UMT5Tokenizer::bytes(seq));
  }
  models::UMT5Encoder enc{nullptr};
  std::string desc;
  if (!encoder.empty()) {
    enc = models::load_umt5_encoder(models::read_umt5_weights(encoder), encoder, compute_dtype,
                                    dev);
    desc = encoder;
  } else {
    TORCH_CHECK(preset == "tiny", "--encoder: required with --preset xxl");
    torch::manual_seed(core::ArgParser::to_int("--seed", seed));
    auto cfg = models::UMT5Config::tiny(tok->vocab_size());
    enc = models::UMT5Encoder(cfg);
    enc->to(dev, compute_dtype);
    enc->eval();
    desc = "tiny random " + cfg.str() + " seed " + seed;
  }
  models::UMT5TextEncoder text_encoder(enc, tok, torch::kFloat32);

  c10::InferenceMode guard;
  auto t0 = std::chrono::steady_clock::now();
  data::embed_prompts(text_encoder, prompts, out, store_dtype,
                      core::ArgParser::to_int("--batch-size", batch), overwrite == "1", desc,
                      [&](int64_t done, int64_t total) {
                        double s = std::chrono::duration<double>(
                                       std::chrono::steady_clock::now() - t0).count();
                        LOG_INFO("embedded %d/%d prompts, %.2f s/prompt", done, total,
                                 s / std::max<int64_t>(done, 1));
                      });
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace causvid::cli
