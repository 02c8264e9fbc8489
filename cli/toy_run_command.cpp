// cli/toy_run_command.cpp: `causvid toy run`, the CPU toy pipeline end to end (the README's first
// command): toy data -> teacher (shipped weights, or trained with the diffusion stage) ->
// stage 1 bidirectional DMD -> stage 2 ODE pairs -> stage 3 causal ODE pretraining ->
// stage 4 asymmetric causal DMD -> one table of the toy metric for real data, the teacher
// at 50 and 3 steps, every student, and the causal DMD student rolled out to 4x length.
// Every stage is the same library code the real commands run (trainer::run_training,
// inference::generate_ode_pairs, toy::sample_from_checkpoint); configs come from configs/toy/.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/array_lmdb.h"
#include "data/prompt_cache.h"
#include "data/shards.h"
#include "data/text_from_config.h"
#include "inference/ode_pairs.h"
#include "inference/step_list.h"
#include "models/wan/presets.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_wrapper.h"
#include "toy/metric.h"
#include "toy/sampling.h"
#include "toy/world.h"
#include "trainer/checkpoint.h"
#include "trainer/model_export.h"
#include "trainer/trainer.h"

namespace causvid::cli {

namespace {
namespace fs = std::filesystem;

struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

struct StageRow {
  std::string name;
  double seconds = 0, step_seconds = 0;
  int64_t steps = 0;
};

struct ToyRunArgs {
  std::string out = "outputs/toy", configs = "configs/toy", teacher = "assets/toy_teacher.safetensors";
  // Student budgets: about 15 minutes per seed on 2 cores (docs/toy_world.md, "A longer causal
  // ODE stage").
  int64_t teacher_steps = 0, bidirectional_dmd_steps = 300, ode_pairs = 192;
  int64_t causal_ode_steps = 900, causal_dmd_steps = 900, num_videos = 4096, eval_batch = 96;
  int64_t self_forcing_steps = 600;  // Self-Forcing student from the causal ODE one (0: skip)
  // Causal Forcing: a teacher-forced causal teacher from the bidirectional one, its ODE
  // pairs and a causal ODE student from them (0: skip).
  int64_t teacher_forcing_steps = 0;
  int64_t seeds = 1;         // student stages (and their ODE pairs) repeated with seeds 0..n-1
  int64_t long_window = 0;   // the 4x rollout's rolling KV cache in latent frames (0: the
                             // training length; -1: the whole video)
  int64_t long_sink = 0;     // and its sink frames
};

// One seed's students: checkpoints and scores.
struct Students {
  std::string bidmd, code, cdmd, sf, tft, tf_ode;
  std::vector<std::pair<std::string, toy::SetScore>> rows;
};

// The pipeline's stages in order; each appends its row of the stage-time table.
class ToyPipeline {
 public:
  explicit ToyPipeline(const ToyRunArgs& a)
      : a_(a), data_dir_(a.out + "/data"), lmdb_(data_dir_ + "/latents_lmdb") {
    options_.quiet = false;
    options_.num_samples = 4;
    options_.preview = [](const torch::Tensor& l) { return toy::preview_frames(l); };
  }

  int run() {
    core::make_dirs(a_.out);
    make_data(data_dir_, /*wrap=*/true);
    teacher_ = a_.teacher;
    if (a_.teacher == "train") {
      // The shipped teacher's two phases (scripts/train_toy_teacher.sh): motion on clips that
      // stay inside the frame, then the torus. The students' teacher is the EMA of the weights.
      const std::string nowrap = a_.out + "/data_nowrap";
      make_data(nowrap, /*wrap=*/false);
      const auto phase1 = train_teacher("teacher", "teacher",
                                        {"data_path=" + nowrap + "/latents_lmdb"}, a_.teacher_steps);
      teacher_ = train_teacher("teacher (torus)", "teacher_torus",
                               {"data_path=" + lmdb_, "dit_path=" + phase1}, 0);
    } else {
      TORCH_CHECK(fs::exists(a_.teacher), "--teacher: ", a_.teacher, ": no such file (pass "
                  "--teacher train to train one, about 2 hours here)");
      rows_.push_back({"teacher (shipped)", 0, 0, 0});
    }
    TORCH_CHECK(a_.seeds >= 1, "--seeds: got ", a_.seeds, ", want >= 1");
    for (int64_t s = 0; s < a_.seeds; ++s) students_.push_back(train_students(s));
    evaluate();
    report();
    return 0;
  }

 private:
  // Stages 1-4 with seed offset s (outputs in <out>/<stage>, or <out>/seed<s>/<stage>).
  Students train_students(int64_t s) {
    const std::string dir = a_.seeds > 1 ? a_.out + "/seed" + std::to_string(s) : a_.out;
    const std::string tag = a_.seeds > 1 ? " (seed " + std::to_string(s) + ")" : "";
    Students st;
    st.bidmd = train("bidirectional_dmd" + tag, "bidirectional_dmd", dir + "/bidirectional_dmd",
                     {"data_path=" + lmdb_, "dit_path=" + teacher_}, a_.bidirectional_dmd_steps, s);
    const std::string ode_lmdb = dir + "/ode_lmdb";
    make_ode_pairs(dir, ode_lmdb, s, tag);
    st.code = train("causal_ode" + tag, "causal_ode", dir + "/causal_ode",
                    {"data_path=" + ode_lmdb, "dit_path=" + teacher_}, a_.causal_ode_steps, s);
    st.cdmd = train("causal_dmd" + tag, "causal_dmd", dir + "/causal_dmd",
                    {"data_path=" + lmdb_, "dit_path=" + teacher_, "generator_ckpt=" + st.code},
                    a_.causal_dmd_steps, s);
    if (a_.self_forcing_steps > 0)
      st.sf = train("self_forcing" + tag, "self_forcing", dir + "/self_forcing",
                    {"data_path=" + data_dir_ + "/train_prompts.txt", "dit_path=" + teacher_,
                     "generator_ckpt=" + st.code},
                    a_.self_forcing_steps, s);
    if (a_.teacher_forcing_steps > 0) {
      st.tft = train("teacher_forcing" + tag, "teacher_forcing", dir + "/teacher_forcing",
                     {"data_path=" + lmdb_, "dit_path=" + teacher_}, a_.teacher_forcing_steps, s);
      const std::string tf_lmdb = dir + "/ode_lmdb_tf";
      make_ode_pairs(dir + "/tf", tf_lmdb, s, " (causal teacher)" + tag, st.tft);
      st.tf_ode = train("causal_ode (causal teacher)" + tag, "causal_ode", dir + "/causal_ode_tf",
                        {"data_path=" + tf_lmdb, "dit_path=" + teacher_, "generator_ckpt=" + st.tft},
                        a_.causal_ode_steps, s);
    }
    return st;
  }

  std::string cfg_path(const std::string& name) const {
    const std::string f = a_.configs + "/" + name + ".yaml";
    TORCH_CHECK(fs::exists(f), f, ": missing stage config (run from the repository root or pass --configs)");
    return f;
  }

  // Trains one stage; its config's seed is offset by 1000 * seed_offset.
  std::string train(const std::string& name, const std::string& cfg_name, const std::string& out,
                    std::vector<std::string> sets, int64_t steps, int64_t seed_offset) {
    sets.push_back("output_path=" + out);
    if (steps > 0) sets.push_back("max_iters=" + std::to_string(steps));  // else the config's
    sets.push_back("keep_latest=1");
    auto c = core::load_config(cfg_path(cfg_name), sets);
    TORCH_CHECK(c.max_iters > 0, c.source, ": key 'max_iters': got 0, want the stage's steps");
    c.save_iters = c.max_iters;
    c.seed += 1000 * seed_offset;
    LOG_INFO("toy run: stage %s (%d steps)", name, c.max_iters);
    Timer t;
    auto r = trainer::run_training(c, dist_, options_);
    rows_.push_back({name, t.seconds(), r.seconds_per_step, r.end_step - r.start_step});
    return r.last_checkpoint;
  }

  // One teacher phase (config `cfg_name`, output <out>/<cfg_name>): the path of its EMA
  // weights, exported as safetensors next to its checkpoints.
  std::string train_teacher(const std::string& name, const std::string& cfg_name,
                            std::vector<std::string> sets, int64_t steps) {
    const std::string dir = a_.out + "/" + cfg_name;
    const auto ckpt = train(name, cfg_name, dir, std::move(sets), steps, 0);
    const std::string ema = dir + "/teacher_ema.safetensors";
    trainer::export_checkpoint(ckpt, ema, "safetensors", /*ema=*/true);
    return ema;
  }

  // The training set in `dir` (the torus world, or with wrap false clips inside the frame).
  void make_data(const std::string& dir, bool wrap) {
    Timer t;
    if (!fs::exists(dir + "/latents_lmdb")) {
      ToyDataArgs d;
      d.out = dir;
      d.num = a_.num_videos;
      d.seed = 1;
      d.wrap = wrap;
      TORCH_CHECK(run_toy_data(d) == 0, "toy data failed");
    } else {
      LOG_INFO("toy run: reusing %s", dir);
    }
    rows_.push_back({wrap ? "data" : "data (no wrap)", t.seconds(), 0, 0});
  }

  // Stage 2: the teacher's 50-step trajectories of the first --ode-pairs training prompts.
  // With `causal_teacher` (a teacher_forcing checkpoint) the trajectories are its KV-cache
  // sampler's (Causal Forcing's stage 2).
  void make_ode_pairs(const std::string& dir, const std::string& ode_lmdb, int64_t seed_offset,
                      const std::string& tag, const std::string& causal_teacher = "") {
    Timer t;
    const bool causal = !causal_teacher.empty();
    auto tc = core::load_config(cfg_path(causal ? "teacher_forcing" : "bidirectional_dmd"),
                                {"dit_path=" + teacher_});
    models::WanModel net(models::wan_config(tc));
    models::load_wan_weights(net, causal ? causal_teacher : teacher_, "generator");
    for (auto& prm : net->parameters()) prm.set_requires_grad(false);
    models::WanDiffusionWrapper w(net, causal, tc.num_frame_per_block,
                                  tc.generator_scheduler_shift());
    auto text = data::text_conditioner_from_config(tc);
    auto all = data::read_prompt_file(data_dir_ + "/train_prompts.txt");
    const int64_t n = std::min<int64_t>(a_.ode_pairs, all.size());
    std::vector<std::string> ps(all.begin(), all.begin() + n);
    inference::OdePairOptions o;
    o.num_steps = 50;
    o.guidance_scale = tc.real_guidance_scale;
    o.shift = tc.generator_scheduler_shift();
    o.shape_FCHW = {tc.image_or_video_shape[1], tc.image_or_video_shape[2],
                    tc.image_or_video_shape[3], tc.image_or_video_shape[4]};
    o.negative_prompt = tc.negative_prompt;
    // The trajectory points that carry the causal ODE student's step list on this grid (at
    // the toy's shift 3: 0, 25, 37, -1; CausVid's 0, 36, 44, -1 are those of shift 8).
    o.keep = inference::keep_for_step_list(
        inference::training_step_list(core::load_config(cfg_path("causal_ode"))), o.num_steps,
        o.shift);
    o.seed = 7 + 1000 * seed_offset;
    o.shard_size = 64;
    const std::string shards = dir + "/ode_shards";
    {
      std::error_code ec2;
      fs::remove_all(shards, ec2);  // a fresh set (the tool itself resumes by skipping shards)
      c10::InferenceMode im;
      inference::generate_ode_pairs(w, *text, ps, shards, o);
    }
    write_ode_lmdb(shards, ode_lmdb);
    rows_.push_back({"ode_pairs (" + std::to_string(n) + " x 50 steps)" + tag, t.seconds(), 0, 0});
  }

  // One row per sampled prompt (the toy prompts repeat: no dedup here, unlike `causvid lmdb
  // build`, which drops repeated prompts as CausVid does). Written under a temporary name.
  static void write_ode_lmdb(const std::string& shards, const std::string& ode_lmdb) {
    std::error_code ec;
    fs::remove_all(ode_lmdb, ec);
    const std::string tmp = ode_lmdb + ".tmp";
    fs::remove_all(tmp, ec);
    {
      data::ArrayLmdbWriter wr(tmp);
      int64_t row = 0;
      std::vector<int64_t> shape;
      for (const auto& f : data::list_shards({shards})) {
        auto sh = data::read_shard(f);
        wr.put_tensor_rows("latents", row, sh.latents);
        wr.put_string_rows("prompts", row, sh.prompts);
        row += sh.latents.size(0);
        shape = sh.latents.sizes().vec();
      }
      shape[0] = row;
      wr.finish({{"latents", shape}, {"prompts", {row}}});
    }
    fs::rename(tmp, ode_lmdb);
  }

  struct EvalRow {
    std::string name, cfg, ckpt, sampler;
    int64_t steps = 0, frames = 0, window = -1, sink = 0;
  };

  toy::SetScore score(const EvalRow& e, const std::vector<std::string>& prompts,
                      const toy::WorldSpec& spec) {
    toy::SampleArgs sa;
    sa.config = cfg_path(e.cfg);
    sa.sets = {"dit_path=" + teacher_};
    sa.checkpoint = e.ckpt;
    sa.which = "generator";
    sa.sampler = e.sampler;
    sa.steps = e.steps > 0 ? e.steps : 50;
    sa.frames = e.frames;
    sa.window_frames = e.window;
    sa.sink_frames = e.sink;
    sa.batch = a_.eval_batch;
    sa.seed = 4242;
    auto s = toy::evaluate(toy::sample_from_checkpoint(sa, prompts), prompts, spec);
    LOG_INFO("toy run: %s", toy::format_set_score(e.name, s));
    return s;
  }

  void evaluate() {
    const auto base = core::load_config(cfg_path("causal_dmd"), {"dit_path=" + teacher_});
    const int64_t F = base.image_or_video_shape[1];
    const auto eval_prompts = data::read_prompt_file(data_dir_ + "/eval_prompts.txt");
    toy::WorldSpec spec;
    spec.frames = F;
    Timer te;
    auto real = toy::generate_for_prompts(eval_prompts, 99, spec, F);
    table_.push_back({"real data", toy::evaluate(real, eval_prompts, spec)});
    for (const EvalRow& e : {EvalRow{"teacher, 50 steps (CFG)", "bidirectional_dmd", teacher_, "teacher", 50, F},
                             EvalRow{"teacher, 3 steps (naive)", "bidirectional_dmd", teacher_, "teacher", 3, F}})
      table_.push_back({e.name, score(e, eval_prompts, spec)});
    for (size_t s = 0; s < students_.size(); ++s) {
      auto& st = students_[s];
      const std::string tag = students_.size() > 1 ? " s" + std::to_string(s) : "";
      const int64_t window = a_.long_window == 0 ? F : a_.long_window;
      std::vector<EvalRow> rows = {
          {"bidirectional DMD, 3 steps", "bidirectional_dmd", st.bidmd, "bidirectional", 0, F},
          {"causal ODE, 3 steps", "causal_ode", st.code, "causal", 0, F},
          {"causal DMD, 3 steps", "causal_dmd", st.cdmd, "causal", 0, F},
          {"causal DMD, 4x length", "causal_dmd", st.cdmd, "causal", 0, 4 * F, window, a_.long_sink},
      };
      if (!st.sf.empty()) {
        rows.push_back({"self-forcing, 3 steps", "self_forcing", st.sf, "causal", 0, F});
        rows.push_back({"self-forcing, 4x length", "self_forcing", st.sf, "causal", 0, 4 * F,
                        window, a_.long_sink});
      }
      if (!st.tft.empty()) {
        rows.push_back({"causal teacher (TF), 50 steps", "teacher_forcing", st.tft,
                        "causal_teacher", 50, F});
        rows.push_back({"causal teacher (TF), 4x length", "teacher_forcing", st.tft,
                        "causal_teacher", 50, 4 * F});
        rows.push_back({"causal ODE from TF teacher, 3 steps", "causal_ode", st.tf_ode, "causal",
                        0, F});
        rows.push_back({"causal ODE from TF teacher, 4x", "causal_ode", st.tf_ode, "causal", 0,
                        4 * F, window, a_.long_sink});
      }
      if (s == 0)
        for (const auto& e : rows) row_names_.push_back(e.name);
      for (auto e : rows) {
        e.name += tag;
        st.rows.push_back({e.name, score(e, eval_prompts, spec)});
      }
    }
    rows_.push_back({"evaluation (" +
                         std::to_string(2 + row_names_.size() * students_.size()) + " sets)",
                     te.seconds(), 0, 0});
  }

  void report() const {
    std::printf("\n== stage times (this machine) ==\n%-34s %10s %8s %10s %8s\n", "stage",
                "seconds", "steps", "s/step", "it/s");
    for (const auto& r : rows_)
      std::printf("%-34s %10.1f %8lld %10.3f %8.2f\n", r.name.c_str(), r.seconds,
                  static_cast<long long>(r.steps), r.step_seconds,
                  r.step_seconds > 0 ? 1.0 / r.step_seconds : 0.0);
    std::printf("%-34s %10.1f\n", "total", total_.seconds());
    std::printf("\n== toy metric (96 eval prompts; docs/toy_world.md) ==\n%s\n",
                toy::set_score_header().c_str());
    for (const auto& [name, s] : table_) std::printf("%s\n", toy::format_set_score(name, s).c_str());
    for (const auto& st : students_)
      for (const auto& [name, s] : st.rows)
        std::printf("%s\n", toy::format_set_score(name, s).c_str());
    // Per student row: mean and spread of the overall score over the seeds.
    const double t50 = table_[1].second.overall, t3 = table_[2].second.overall;
    const auto overall = [&](size_t row) {
      std::vector<double> v;
      for (const auto& st : students_) v.push_back(st.rows[row].second.overall);
      return v;
    };
    const auto mean = [](const std::vector<double>& v) {
      double m = 0;
      for (double x : v) m += x;
      return m / v.size();
    };
    std::printf("\n== students over %zu seed(s): overall mean [min, max] ==\n", students_.size());
    for (size_t r = 0; r < row_names_.size(); ++r) {
      auto v = overall(r);
      std::printf("%-34s %6.1f [%5.1f, %5.1f]  %5.1f%% of the 50-step teacher, %+5.1f vs naive 3-step\n",
                  row_names_[r].c_str(), mean(v), *std::min_element(v.begin(), v.end()),
                  *std::max_element(v.begin(), v.end()), 100.0 * mean(v) / std::max(1e-9, t50),
                  mean(v) - t3);
    }
    const double cd = mean(overall(2)), cd4 = mean(overall(3));
    std::printf("\nteacher 50 steps %.1f, naive 3 steps %.1f (gap %.1f); causal DMD %.1f (%.1f%% "
                "of the teacher, %+.1f vs naive); 4x length keeps %.1f%% of 1x\n",
                t50, t3, t50 - t3, cd, 100.0 * cd / std::max(1e-9, t50), cd - t3,
                100.0 * cd4 / std::max(1e-9, cd));
    const auto sf_row = std::find(row_names_.begin(), row_names_.end(), "self-forcing, 3 steps");
    if (sf_row != row_names_.end()) {
      const size_t r = static_cast<size_t>(sf_row - row_names_.begin());
      const double sf = mean(overall(r)), sf4 = mean(overall(r + 1));
      std::printf("self-forcing %.1f (%.1f%% of the teacher, %+.1f vs causal DMD); 4x length "
                  "keeps %.1f%% of 1x (causal DMD %.1f%%): %s drift\n",
                  sf, 100.0 * sf / std::max(1e-9, t50), sf - cd, 100.0 * sf4 / std::max(1e-9, sf),
                  100.0 * cd4 / std::max(1e-9, cd),
                  sf4 / std::max(1e-9, sf) > cd4 / std::max(1e-9, cd) ? "less" : "no less");
    }
  }

  const ToyRunArgs& a_;
  const std::string data_dir_, lmdb_;
  const Timer total_;
  std::shared_ptr<core::DistContext> dist_ = std::make_shared<core::DistContext>();
  trainer::TrainOptions options_;
  std::vector<StageRow> rows_;
  std::vector<std::pair<std::string, toy::SetScore>> table_;  // real data and the teacher
  std::vector<Students> students_;
  std::vector<std::string> row_names_;  // the students' rows, in order
  std::string teacher_;
};

int run_toy_run(const ToyRunArgs& a) { return ToyPipeline(a).run(); }

}  // namespace

void add_toy_run_command(Commands& cmds, CLI::App* toy) {
  auto r = std::make_shared<ToyRunArgs>();
  CLI::App* app = cmds.add("run",
                           "The CPU toy pipeline: data, teacher, bidirectional DMD, ODE pairs, "
                           "causal ODE, causal DMD, Self-Forcing, then the toy metric table "
                           "(docs/toy_world.md).",
                           [r] { return run_toy_run(*r); }, toy);
  app->add_option("--out", r->out, "output directory");
  app->add_option("--configs", r->configs, "folder of the stage configs");
  app->add_option("--teacher", r->teacher,
                  "teacher weights; 'train' trains one (configs/toy/teacher.yaml, then "
                  "teacher_torus.yaml: about 2 hours)");
  app->add_option("--teacher-steps", r->teacher_steps,
                  "phase-1 diffusion steps when training the teacher (0: teacher.yaml's "
                  "max_iters; phase 2 takes teacher_torus.yaml's)");
  app->add_option("--bidirectional-dmd-steps", r->bidirectional_dmd_steps, "stage 1 steps");
  app->add_option("--ode-pairs", r->ode_pairs, "stage 2: prompts sampled by the teacher (50 steps)");
  app->add_option("--causal-ode-steps", r->causal_ode_steps, "stage 3 steps");
  app->add_option("--causal-dmd-steps", r->causal_dmd_steps, "stage 4 steps");
  app->add_option("--self-forcing-steps", r->self_forcing_steps,
                  "Self-Forcing student steps, from the causal ODE student (0: skip)");
  app->add_option("--teacher-forcing-steps", r->teacher_forcing_steps,
                  "Causal Forcing: train a teacher-forced causal teacher this many steps, take its "
                  "ODE pairs and a causal ODE student from them (0: skip)");
  app->add_option("--num-videos", r->num_videos, "toy training videos");
  app->add_option("--eval-batch", r->eval_batch, "videos per sampling batch in the evaluation");
  app->add_option("--seeds", r->seeds, "run the student stages with this many seeds (mean and spread)");
  app->add_option("--long-window", r->long_window,
                  "4x rollout: rolling KV cache of this many latent frames (0: the training "
                  "length; -1: the whole video)");
  app->add_option("--long-sink", r->long_sink, "4x rollout: sink frames of the rolling cache");
}

}  // namespace causvid::cli
