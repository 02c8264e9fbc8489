// toy/probes.h: diagnostics of a toy teacher that does not learn (issue #12, "diagnose before
// tuning"): whether the text conditioning separates each prompt attribute, and whether the
// DiT's output at a token depends on other tokens at all (attention in use).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/t5/text_conditioner.h"
#include "models/wan/wan_model.h"
#include "toy/world.h"

namespace causvid::toy {

// Per attribute (size, colour, shape, direction): how far apart the text embeddings of
// prompts that differ only in that attribute are, relative to the embeddings' own scale, and
// how well a nearest-centroid classifier on the flattened embedding recovers the attribute
// (leave-one-out over the 96 prompts; chance = 1 / values).
struct TextProbeRow {
  std::string attribute;
  int values = 0;
  double relative_distance = 0;  // mean ||e(p) - e(p')|| / mean ||e||, p, p' one word apart
  double centroid_accuracy = 0;  // leave-one-out nearest-centroid accuracy
};
std::vector<TextProbeRow> text_probe(models::TextConditioner& text);

// How much the model's flow output moves when one input token (a 2x2 patch of one frame) is
// perturbed, as mean |delta| per output pixel over: the perturbed token itself, the 4
// neighbouring tokens of the same frame, the same token in the next frame, the token the
// prompt's motion leads to in the next frame, and all tokens at least 3 tokens away. The
// input is a real clip noised to timestep t. A model that ignores attention moves only the
// perturbed token.
struct CouplingRow {
  double t = 0;
  double self = 0, neighbours = 0, next_frame = 0, next_frame_moved = 0, far = 0;
};
std::vector<CouplingRow> coupling_probe(models::WanModel& net, const torch::Tensor& context_1TE,
                                        const std::string& prompt, const WorldSpec& spec,
                                        const std::vector<double>& timesteps, uint64_t seed);

std::string format_text_probe(const std::vector<TextProbeRow>& rows);
std::string format_coupling_probe(const std::vector<CouplingRow>& rows);

}  // namespace causvid::toy
