// Generation for inference and RL rollouts: batched prompts of different
// lengths (optionally with images), a preallocated per-layer KV cache,
// greedy / temperature / top-k / top-p sampling from a seeded generator, stop
// tokens and per-sequence length limits.
//
// Prompts are left-padded to a common length; pad positions form their own
// segment, so each prompt's rotary positions start at 0 and no real position
// ever attends to a pad. Decoding then appends one position per sequence per
// step at the same cache index. Cached decoding gives the logits of a full
// forward over prompt + generated tokens (up to floating-point order).
//
// Log-probability convention: the log-probability reported for a sampled
// token is under the model's unmodified distribution, log_softmax(logits) at
// temperature 1 without top-k/top-p, which is what an RL loss recomputes from
// a forward pass. The <image> placeholder is never sampled (the model cannot
// emit images); its probability is removed from the sampling distribution
// only.
//
// Shapes: B batch (prompts), V vocab, S_img image side, Ch image channels,
// N_img images, C model width, H heads, KV kv-heads, D head dim, F ffn hidden,
// S_max cache positions (longest prompt + max_new_tokens).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "model/forward.h"
#include "model/model.h"

namespace muse::model {

struct Prompt {
  // May hold runs of <image> placeholders; each Np consecutive ones take one
  // image, in order.
  std::vector<int64_t> tokens = {};
  at::Tensor images = {};  // (N_img, S_img, S_img, Ch) uint8; undefined without placeholders
  int64_t max_new_tokens = 256;
  // Budget forcing (s1, arXiv 2501.19393): once this many tokens are
  // generated without GenerateOptions::think_end_token, that token is the
  // next one, so reasoning ends and the answer follows. 0 = no limit.
  int64_t think_limit = 0;
};

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // keep only the k most likely tokens; 0 = all
  double top_p = 1.0;        // keep the fewest most likely tokens whose mass reaches top_p; 1 = all
};

// How Decoder runs its one-position steps.
enum class StepForm {
  // Attention over the filled cache positions only; any device.
  kDynamic,
  // Shapes fixed for the whole call, as a CUDA graph needs them: attention
  // over all S_max cache positions (masked past the new one), the cache
  // written at an index held in a tensor, rows rounded up to a power of two
  // (the rows past the live ones compute values nobody reads). Any device;
  // on the CPU only to test the form kCudaGraph replays.
  kStatic,
  // kStatic captured once per row count into a CUDA graph and replayed: one
  // launch per step instead of one per operator. CUDA builds with the model
  // on a GPU only.
  kCudaGraph,
};

// kCudaGraph for a model on a GPU in a CUDA build, else kDynamic.
StepForm default_step_form(const at::Device& device);

struct GenerateOptions {
  SamplingOptions sampling;
  std::vector<int64_t> stop_tokens;  // a sequence ends after generating any of these
  uint64_t seed = 0;                 // the same seed, prompts and model give the same tokens
  int64_t think_end_token = -1;      // what Prompt::think_limit forces; needed when one is set
  bool record_entropy = false;       // fill Generation::entropies
  // Decoder's steps; unset: default_step_form of the model's device.
  std::optional<StepForm> step_form = std::nullopt;
};

enum class StopReason { kStopToken, kLength };

struct Generation {
  std::vector<int64_t> tokens;  // generated tokens, the stop token included
  std::vector<float> logprobs;  // per token: log_softmax(logits)[token] at temperature 1
  // Per token, with GenerateOptions::record_entropy: the entropy (nats) of
  // the temperature-1 distribution it was drawn from.
  std::vector<float> entropies;
  int64_t forced_think_end = -1;  // index of a token forced by Prompt::think_limit; -1 = none
  StopReason stop_reason = StopReason::kLength;
};

// The cache-free inputs of `prompts` left-padded to `width` (>= the longest):
// tokens, segment ids (0 on pads, 1 on the prompt, so positions start at 0
// where each prompt starts) and the images with their slots. Also the shape
// of a batch of whole sequences (prompt + response) for scoring them. Throws
// ModelError when a prompt's images do not match its placeholders.
Inputs left_padded_inputs(const ModelConfig& cfg, const std::vector<Prompt>& prompts, int64_t width,
                          const at::Device& device);

// A batch of sequences decoded step by step with a KV cache. Runs without
// autograd. Rotary positions past model.max_seq_len are computed but were
// never trained: keep prompt + new tokens within it.
//
// Built for RL's groups and ragged lengths:
// * Equal prompts (the G samples of a GRPO group) are run through the model
//   once; their keys and values are copied into each sample's cache rows.
// * A finished sequence leaves the batch (drop): the row of the last
//   sequence still running moves into its place, so every step computes
//   only live rows, at the cost of copying one cache row per finished
//   sequence.
// * The cache is allocated once, for every sequence's prompt and
//   max_new_tokens.
// * On a GPU, steps replay CUDA graphs (StepForm::kCudaGraph), captured per
//   power-of-two row count as sequences leave.
//
// The prompts and the one-position steps both go through the model's
// block_forward. The steps pass it the blocks' weights packed (pack_block:
// q/k/v and gate/up stacked into one matrix product each and, on the CPU,
// reordered once into oneDNN's layout for the batch, since a decode step's
// products have B rows, too few to amortise repacking on every call), and
// rotary tables and the padding mask computed once. The packed copies are
// made at the first step() and do not follow later changes to the model.
class Decoder {
 public:
  // Runs the prompts (each non-empty) through the model, with room in the
  // cache for `max_new_tokens` more positions per sequence. Throws ModelError.
  Decoder(const Model& model, const std::vector<Prompt>& prompts, int64_t max_new_tokens,
          StepForm form = StepForm::kDynamic);
  ~Decoder();

  // The sequences still in the batch, one per row: row r holds prompt
  // sequences()[r]. All prompts, in order, until the first drop().
  const std::vector<int64_t>& sequences() const { return sequences_; }
  // (rows, V) fp32 logits of the next token of each row's sequence.
  const at::Tensor& logits() const { return logits_; }
  // Appends one token per row, (rows) integer, and computes the next logits.
  void step(const at::Tensor& tokens);
  // Takes the sequences at `rows` (indices into sequences()) out of the
  // batch; the other sequences' rows may move (sequences() says where).
  void drop(std::vector<int64_t> rows);

 private:
  struct Graph;  // a captured step (CUDA builds)
  // The blocks and output projection packed for the live rows.
  void pack();
  // A step of `rows` rows (>= the live ones) in StepForm::kStatic, from the
  // tokens in static_tokens_ and the index in static_index_: (rows, V).
  at::Tensor static_step(int64_t rows);
  // static_step's rows for `n` live rows: the next power of two, at most B.
  int64_t static_rows(int64_t n) const;

  const Model* model_;               // [not null] must outlive the decoder
  std::vector<int64_t> sequences_;   // [rows] prompt index of each row
  at::Tensor pad_;                   // (B) int64: left-padding of each row's sequence
  std::vector<LayerCache> cache_;    // [n_layers], each (B, KV, S_max, D); rows [0, rows) live
  std::vector<PackedBlock> packed_;  // [n_layers] the blocks' weights packed for packed_rows_
  int64_t packed_rows_ = 0;
  at::Tensor packed_output_;  // (V, C): the head's output projection, packed
  at::Tensor cos_, sin_;      // (S_max, D) fp32 rotary tables
  at::Tensor mask_;           // (B, 1, 1, S_max): 0 where a row may attend, -inf on its pads
  int64_t length_ = 0;        // cache positions filled (padded prompt + steps)
  at::Tensor logits_;         // (rows, V)
  StepForm form_;
  at::Tensor static_tokens_;  // (B) int64: kStatic/kCudaGraph's input tokens
  at::Tensor static_index_;   // (1) int64: kStatic/kCudaGraph's cache index
  at::Tensor positions_;      // (S_max) int64: 0..S_max-1
  std::map<int64_t, std::unique_ptr<Graph>> graphs_;  // by static_rows
};

// Generates for every prompt until a stop token or its max_new_tokens
// (prompt length + max_new_tokens must fit in model.max_seq_len), ending
// reasoning at a prompt's think_limit. Sampling draws one uniform number per
// prompt and step from the seeded generator (finished sequences' numbers
// are drawn and unused, so a sequence's draws do not depend on when the
// others finish) and takes the first token whose cumulative probability
// exceeds it (inverse transform sampling). The sampler makes one
// exponential of the logits that serves the draw, the log-probability and
// the entropy. Throws ModelError for bad prompts or options, or logits that
// are not finite.
std::vector<Generation> generate(const Model& model, const std::vector<Prompt>& prompts,
                                 const GenerateOptions& options);

}  // namespace muse::model
