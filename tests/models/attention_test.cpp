// tests/models/attention_test.cpp: chunked attention against the textbook formula, forward
// and backward, full and block-causal, with chunk budgets small enough to force chunking.
#include "models/common/attention.h"

#include "tests/test_util.h"

namespace causvid {
namespace {

struct BudgetGuard {
  int64_t old = models::attention_chunk_budget();
  explicit BudgetGuard(int64_t b) { models::set_attention_chunk_budget(b); }
  ~BudgetGuard() { models::set_attention_chunk_budget(old); }
};

torch::Tensor block_mask(int64_t L, int64_t block) {
  auto idx = torch::div(torch::arange(L), block, "floor");
  return idx.unsqueeze(0) <= idx.unsqueeze(1);  // [L,S]: key block <= query block
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol, const char* what) {
  double err = (a - b).abs().max().item<double>();
  EXPECT_LT(err, tol) << what;
}

class AttentionBudget : public ::testing::TestWithParam<int64_t> {};

TEST_P(AttentionBudget, FullMatchesNaiveForwardAndBackward) {
  BudgetGuard g(GetParam());
  torch::manual_seed(0);
  auto q = torch::randn({2, 37, 3, 8}, torch::requires_grad());
  auto k = torch::randn({2, 29, 3, 8}, torch::requires_grad());
  auto v = torch::randn({2, 29, 3, 8}, torch::requires_grad());
  auto w = torch::randn({2, 37, 3, 8});
  auto out = models::attention(q, k, v);
  auto ref = models::naive_attention(q, k, v);
  expect_close(out, ref, 1e-5, "forward");
  auto gq = torch::autograd::grad({(out * w).sum()}, {q, k, v});
  auto gr = torch::autograd::grad({(ref * w).sum()}, {q, k, v});
  for (int i = 0; i < 3; ++i) expect_close(gq[i], gr[i], 1e-4, "grad");
}

TEST_P(AttentionBudget, BlockCausalMatchesMaskedNaive) {
  BudgetGuard g(GetParam());
  torch::manual_seed(1);
  const int64_t L = 24, block = 8;
  auto q = torch::randn({1, L, 2, 8}, torch::requires_grad());
  auto k = torch::randn({1, L, 2, 8}, torch::requires_grad());
  auto v = torch::randn({1, L, 2, 8}, torch::requires_grad());
  auto out = models::block_causal_attention(q, k, v, block);
  auto ref = models::naive_attention(q, k, v, block_mask(L, block));
  expect_close(out, ref, 1e-5, "forward");
  auto gq = torch::autograd::grad({out.pow(2).sum()}, {q, k, v});
  auto gr = torch::autograd::grad({ref.pow(2).sum()}, {q, k, v});
  for (int i = 0; i < 3; ++i) expect_close(gq[i], gr[i], 1e-4, "grad");
}

// 1 << 24: one chunk; 64 and 200: many row and head chunks.
INSTANTIATE_TEST_SUITE_P(Budgets, AttentionBudget, ::testing::Values(int64_t(1) << 24, 64, 200));

TEST(Attention, BlockCausalRejectsPartialBlocks) {
  auto q = torch::randn({1, 10, 1, 8});
  testing::expect_error_contains([&] { models::block_causal_attention(q, q, q, 4); },
                                 {"not a whole number of blocks"});
}

TEST(Attention, ShapeMismatchIsAnError) {
  auto q = torch::randn({1, 10, 2, 8});
  auto k = torch::randn({1, 10, 3, 8});
  testing::expect_error_contains([&] { models::attention(q, k, k); }, {"do not match"});
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// Causal Forcing's teacher-forcing mask (_prepare_teacher_forcing_mask) as a dense [2L, 2L]
// boolean matrix, against the per-block implementation.
TEST(TeacherForcingAttention, MatchesTheReferenceMaskDensely) {
  torch::manual_seed(0);
  const int64_t L = 12, bt = 4;  // 3 blocks of 4 tokens per half
  auto q = torch::randn({2, 2 * L, 2, 8}), k = torch::randn({2, 2 * L, 2, 8}),
       v = torch::randn({2, 2 * L, 2, 8});
  auto mask = torch::zeros({2 * L, 2 * L}, torch::kBool);
  for (int64_t i = 0; i < 2 * L; ++i)
    for (int64_t j = 0; j < 2 * L; ++j) {
      bool ok = i == j;
      if (i < L) ok |= j < (i / bt + 1) * bt;
      else {
        const int64_t b = (i - L) / bt;
        ok |= (j >= L + b * bt && j < L + (b + 1) * bt) || j < b * bt;
      }
      mask[i][j] = ok;
    }
  auto want = models::naive_attention(q, k, v, mask);
  auto got = models::teacher_forcing_attention(q, k, v, bt);
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  EXPECT_THROW(models::teacher_forcing_attention(q.slice(1, 0, 2 * L - 2), k.slice(1, 0, 2 * L - 2),
                                                v.slice(1, 0, 2 * L - 2), bt),
               c10::Error);
}

}  // namespace
}  // namespace causvid
