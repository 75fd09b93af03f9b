// The compute accounting of the RL metrics (rl/rl_compute.h) against FLOPs
// worked out by hand for a small model.
#include "rl/rl_compute.h"

#include <gtest/gtest.h>

#include "model/layout.h"

namespace muse::rl {
namespace {

// C 4, L 2, H 2 (D 2), KV 1, F 6, V 10, one 2x2 grayscale patch, tied head.
model::ModelConfig small_config() {
  model::ModelConfig c;
  c.preset = "custom";
  c.vocab_size = 10;
  c.dim = 4;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.ffn_hidden = 6;
  c.max_seq_len = 16;
  c.image_size = 2;
  c.patch_size = 2;
  c.image_channels = 1;
  c.tie_embeddings = true;
  return c;
}

// N = 2 layers x (q 16 + k 8 + v 8 + o 16 + gate/up/down 72 + norms 8)
//   + patch projection 16 + bias 4 + output norm 4 + tied head 40 = 320;
// L H D = 8. Forward per token at length T: 2 N + 4 L H D T = 640 + 32 T.
constexpr double kForwardPerToken8 = 640 + 32 * 8;  // T = 8: 896

TEST(RlCompute, ForwardIsAThirdOfTrainingFlops) {
  const model::ModelConfig c = small_config();
  EXPECT_EQ(model::flops_per_token(c, 8), 3 * 896);
  EXPECT_EQ(sequence_forward_flops(c, 8), 8 * kForwardPerToken8);
  EXPECT_EQ(sequence_forward_flops(c, 1), 640 + 32);
  EXPECT_EQ(sequence_forward_flops(c, 0), 0);
}

TEST(RlCompute, RolloutIsOneForwardOfPromptAndResponse) {
  const model::ModelConfig c = small_config();
  EXPECT_EQ(rollout_flops(c, 3, 5), 7168);  // 8 tokens x 896
  EXPECT_EQ(rollout_flops(c, 8, 0), 7168);
  // The attention term grows with the sequence: 12 tokens x (640 + 32 x 12).
  EXPECT_EQ(rollout_flops(c, 4, 8), 12 * 1024);
}

TEST(RlCompute, UpdatePassesFollowPolicyUpdate) {
  UpdateOptions o;
  o.mini_batches = 1;
  o.epochs = 1;
  EXPECT_EQ(update_forward_passes(o, false), 3);  // on-policy: forward + backward only
  EXPECT_EQ(update_forward_passes(o, true), 4);   // + the reference's forward
  o.mini_batches = 2;
  EXPECT_EQ(update_forward_passes(o, false), 4);  // + the old log-probabilities
  o.mini_batches = 1;
  o.epochs = 2;
  EXPECT_EQ(update_forward_passes(o, true), 8);  // 2 x 3 + old + reference
}

TEST(RlCompute, UpdateFlops) {
  const model::ModelConfig c = small_config();
  UpdateOptions o;
  o.mini_batches = 1;
  o.epochs = 1;
  EXPECT_EQ(update_flops(c, o, false, 3, 5), 21504);  // 3 x 7168
  EXPECT_EQ(update_flops(c, o, true, 3, 5), 28672);   // 4 x 7168
  o.epochs = 2;
  EXPECT_EQ(update_flops(c, o, true, 3, 5), 57344);  // 8 x 7168
}

}  // namespace
}  // namespace muse::rl
