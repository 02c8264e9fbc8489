// tests/toy/probes_test.cpp: the toy diagnostics (toy/probes.h): the text probe tells apart
// an encoder that separates every attribute from one that ignores a word, and the coupling
// probe sees a model whose tokens interact and one whose tokens do not.
#include "toy/probes.h"

#include "models/wan/presets.h"
#include "tests/test_util.h"
#include "toy/text_encoder.h"

namespace causvid {
namespace {

// Encodes a prompt with its direction word replaced: the direction cannot be recovered.
class NoDirection : public models::TextConditioner {
 public:
  explicit NoDirection(models::TextConditioner& inner) : inner_(inner) {}
  torch::Tensor encode(const std::vector<std::string>& prompts) override {
    std::vector<std::string> p;
    for (auto s : prompts) p.push_back(s.substr(0, s.rfind(' ')) + " left");
    return inner_.encode(p);
  }
  int64_t text_len() const override { return inner_.text_len(); }
  int64_t dim() const override { return inner_.dim(); }
  torch::ScalarType output_dtype() const override { return inner_.output_dtype(); }

 private:
  models::TextConditioner& inner_;
};

TEST(ToyProbes, TextProbeSeparatesAttributesOrShowsTheMissingOne) {
  toy::ToyTextEncoder enc;
  auto rows = toy::text_probe(enc);
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& r : rows) {
    EXPECT_GT(r.relative_distance, 0.1) << r.attribute;
    EXPECT_EQ(r.centroid_accuracy, 1.0) << r.attribute;
  }
  NoDirection blind(enc);
  auto b = toy::text_probe(blind);
  EXPECT_EQ(b[3].attribute, "direction");
  EXPECT_EQ(b[3].relative_distance, 0.0);
  EXPECT_LE(b[3].centroid_accuracy, 0.5);
  EXPECT_EQ(b[1].centroid_accuracy, 1.0);  // colour still there
}

TEST(ToyProbes, CouplingProbeSeesAttention) {
  auto cfg = core::load_config(testing::source_dir() + "/configs/toy/teacher.yaml",
                               {"model_num_layers=2"});
  models::WanModel net(models::wan_config(cfg));
  net->init_weights(5);
  {
    torch::NoGradGuard ng;
    net->head->head->weight.normal_(0, 0.02);
  }
  toy::ToyTextEncoder enc;
  const std::string prompt = "a large red square moving right";
  auto ctx = enc.encode({prompt});
  toy::WorldSpec spec;
  auto rows = toy::coupling_probe(net, ctx, prompt, spec, {500}, 0);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_GT(rows[0].self, 0);
  EXPECT_GT(rows[0].far, 0);  // attention reaches every token
  // Without attention (self-attention output projections zero), no other token moves.
  {
    torch::NoGradGuard ng;
    for (auto& kv : net->named_parameters())
      if (kv.key().find("self_attn.o.") != std::string::npos) kv.value().zero_();
  }
  auto none = toy::coupling_probe(net, ctx, prompt, spec, {500}, 0);
  EXPECT_GT(none[0].self, 0);
  EXPECT_EQ(none[0].neighbours, 0);
  EXPECT_EQ(none[0].far, 0);
}

}  // namespace
}  // namespace causvid
