// The model's forward pass as a chain of pure functions of (weights, inputs),
// one per unit: embed_forward -> block_forward x n_layers -> head_forward.
// FSDP gathers a unit's flat buffer, builds its weight views and calls the
// unit's function; Model chains them for single-process use; the decoder
// (generate.h) runs the same functions over a KV cache. block_forward is the
// model's only transformer block: training, prefill and cached decode steps
// all go through it.
//
// Architecture (Llama family): token embedding; per block x += attn(rmsnorm(x)),
// x += swiglu(rmsnorm(x)); final rmsnorm; output projection. Attention is
// causal grouped-query attention with rotary embeddings in the half-split
// ("rotate_half") layout of Hugging Face Llama: dimension i of a head pairs
// with i + D/2, so q/k weights export as a plain copy.
//
// Images (early fusion): an image (S_img, S_img, Ch) uint8 is cut into
// Np = (S_img/P)^2 patches in row-major order, each flattened in (row, column,
// channel) order, scaled to [0, 1] and normalised to [-1, 1] ((x - 0.5) / 0.5),
// projected to width C (weight + bias) plus a learned per-patch-position
// vector. The Np vectors replace Np consecutive <image> placeholder tokens of
// the sequence.
//
// Shapes: B batch, T time (new positions), S key positions (cache + new),
// C model width, V vocab, H heads, KV kv-heads, D head dim, F ffn hidden,
// P patch size, S_img image side, Ch image channels, Np patches per image,
// N_img images, N_seg segments of packed rows, N_g segments of one length.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>

#include "model/model_config.h"
#include "model/weights.h"

namespace muse::model {

// Inputs that do not fit the model: wrong shapes or dtypes, token ids outside
// the vocabulary, images that do not match the <image> placeholders.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Inputs {
  at::Tensor tokens = {};       // (B, T) int64 or int32 token ids
  at::Tensor segment_ids = {};  // (B, T) integer, or undefined: one segment per row
  at::Tensor images = {};       // (N_img, S_img, S_img, Ch) uint8, or undefined: no images
  // (N_img, 2) int64: (batch row, first placeholder position) of each image.
  // Together the images must cover exactly the <image> placeholders of tokens.
  at::Tensor image_slots = {};
};

// How attention keeps the segments of packed rows apart.
enum class PackedAttention {
  kAuto,       // as packed_attention_for picks it
  kDenseMask,  // a (B, 1, T, T) bool block-diagonal causal mask (what a KV cache needs)
  kVarlen,     // segment boundaries only (Segments): no (T, T) tensor
};

// On the CPU, rows of up to this many positions keep the dense mask: one
// masked kernel call over whole rows, whose (T, T) mask is at most 1 MiB a
// row in fp32, and the tiny presets' results as they were.
inline constexpr int64_t kDenseMaskMaxLen = 512;

// What kAuto means for packed rows of T positions on `device`: kDenseMask on
// the CPU up to kDenseMaskMaxLen positions, kVarlen otherwise.
PackedAttention packed_attention_for(at::Device device, int64_t T);

// Whether LibTorch's flash kernel takes attention in `dtype` with heads of
// `head_dim` (fp16 or bf16, D a multiple of 8 up to 256), given a GPU for it.
bool flash_attention_supports(at::ScalarType dtype, int64_t head_dim);

// Whether attention's variable-length path runs the flash kernel for queries
// like `q` (B, H, T, D): a CUDA build, q on a GPU of compute capability 8.0
// or more, and flash_attention_supports. Otherwise it runs SDPA per group of
// equal-length segments.
bool uses_flash_varlen(const at::Tensor& q);

// Packed rows as variable-length sequences over the B*T tokens taken row
// after row (a segment never crosses a row): segment i holds the flat tokens
// [cu_seqlens[i], cu_seqlens[i + 1]).
struct Segments {
  at::Tensor cu_seqlens;  // (N_seg + 1) int32 on the device
  int64_t max_len = 0;    // the longest segment
  // The segments grouped by length, for SDPA per group (the path without
  // flash): group g stacks its segments of lengths[g] positions, whose flat
  // tokens, segment after segment, are positions[g] ((N_g * lengths[g]) int64
  // on the device), and group_slot ((B*T) int64) is where each flat token
  // sits in the groups' concatenation.
  std::vector<int64_t> lengths;
  std::vector<at::Tensor> positions;
  at::Tensor group_slot;
  bool defined() const { return cu_seqlens.defined(); }
};

// Where the T new positions sit: rotary tables and which keys each may see.
// A segment is a maximal run of equal segment ids; attention stays inside
// its segment (block-diagonal causal) and positions restart at 0 in each.
struct AttnContext {
  at::Tensor cos;  // (B, 1, T, D) fp32
  at::Tensor sin;  // (B, 1, T, D) fp32
  // (B, 1, T, S) bool, true where a query may attend to a key, or floating
  // point, added to the attention scores (0 or -inf; a mask made once and
  // broadcast over T); undefined means plain causal attention over the T new
  // positions (S == T), or within `segments` when those are defined.
  at::Tensor mask;
  int64_t cache_start = 0;  // KV-cache index of the first new position (0 without a cache)
  // (1) int64 on the device, or undefined: the cache index of the one new
  // position, held in a tensor so that a CUDA graph can replay the step at
  // every index. Attention then reads the whole cache (S = S_max), and
  // `mask` must close the positions past the new one.
  at::Tensor cache_index = {};
  // Packed rows without a cache (PackedAttention::kVarlen), or undefined.
  Segments segments = {};
};

// The context of a full sequence: positions 0..T-1 and causal attention, or
// per segment when `in.segment_ids` is defined, kept apart as `form` says.
AttnContext attn_context(const ModelConfig& cfg, const Inputs& in,
                         PackedAttention form = PackedAttention::kAuto);

// The rotary frequencies (D/2, fp32 on the CPU) with model.rope_scaling
// applied, as transformers computes them; `scaled` false gives them before
// scaling (what GGUF's rope_freqs factors divide).
at::Tensor rope_inv_freq(const ModelConfig& cfg, bool scaled = true);

// The general form, for decoding with a KV cache: rotary positions (B, T)
// integer, and a mask (B, 1, T, S) bool or undefined (causal, S == T).
AttnContext attn_context(const ModelConfig& cfg, const at::Tensor& positions,
                         const at::Tensor& mask, int64_t cache_start);

// One layer's key/value cache for B sequences of up to S_max positions.
struct LayerCache {
  at::Tensor k;  // (B, KV, S_max, D)
  at::Tensor v;  // (B, KV, S_max, D)
};

// A block's projections packed for decode steps of B rows (linear.h): the
// same weights, q/k/v and gate/up stacked so each is one matrix product.
struct PackedBlock {
  at::Tensor wqkv;       // ((H + 2 KV) D, C): wq, wk, wv stacked
  at::Tensor bqkv;       // ((H + 2 KV) D): bq, bk, bv stacked, or undefined
  at::Tensor wo;         // (C, H D)
  at::Tensor w_gate_up;  // (2 F, C): w_gate, w_up stacked
  at::Tensor w_down;     // (C, F)
};
PackedBlock pack_block(const BlockWeights& w, int64_t rows);

// The one attention entry point (a new kernel goes here): q (B, H, T, D)
// after rotary, k and v (B, KV, T, D) of the T new positions. With `cache`,
// k and v are written at [ctx.cache_start, ctx.cache_start + T) and the
// queries attend to cache positions [0, ctx.cache_start + T) through
// ctx.mask; with ctx.cache_index (one new position), k and v are written at
// that index and the queries attend to the whole cache through ctx.mask;
// without a cache, to the new positions, causally within ctx.segments
// (flash's variable-length kernel, or SDPA per group of equal-length
// segments), through ctx.mask (packed segments), or causally. A cache takes
// no ctx.segments. Grouped-query heads are shared, not copied.
// Returns (B, H, T, D).
at::Tensor attention(const at::Tensor& q, at::Tensor k, at::Tensor v, const AttnContext& ctx,
                     LayerCache* cache);

// (B, T, C): token embeddings with the images' patch vectors at their slots.
// Throws ModelError for inputs that do not fit `cfg`.
at::Tensor embed_forward(const EmbedWeights& w, const ModelConfig& cfg, const Inputs& in);

// (B, T, C) -> (B, T, C): x += attn(rmsnorm(x)); x += swiglu(rmsnorm(x)).
// q, k and v take their biases and q and k their per-head RMSNorm (before
// rotary) when the family has them (w.bq, w.q_norm defined).
// With `cache`, the new keys/values are written at [ctx.cache_start,
// ctx.cache_start + T) and attention reads cache positions [0,
// ctx.cache_start + T); `cache` must not be used under autograd. With
// `packed` (pack_block of `w`), the projections multiply the packed weights.
at::Tensor block_forward(const BlockWeights& w, const ModelConfig& cfg, const at::Tensor& x,
                         const AttnContext& ctx, LayerCache* cache = nullptr,
                         const PackedBlock* packed = nullptr);

// (B, T, C) -> (B, T, V) logits; `packed_output` is w.output packed by
// pack_linear, or undefined.
at::Tensor head_forward(const HeadWeights& w, const ModelConfig& cfg, const at::Tensor& x,
                        const at::Tensor& packed_output = {});

// The head short of its output projection: what a loss needs to project a
// chunk of tokens at a time (model/chunked_loss.h) instead of holding the
// (B, T, V) logits.
struct HeadOutput {
  at::Tensor hidden;  // (B, T, C) after the final norm
  at::Tensor output;  // (V, C) the output projection (tok_embed when tied)
  // (B, T, V): the logits, computed exactly as head_forward computes them.
  at::Tensor logits() const;
};
HeadOutput head_output(const HeadWeights& w, const ModelConfig& cfg, const at::Tensor& x);

// Next-token cross-entropy summed over the counted targets, and their number.
// A target counts unless it is -100 or the <image> placeholder.
struct TextLoss {
  at::Tensor sum;    // () fp32, differentiable
  at::Tensor count;  // () int64
};
TextLoss text_loss(const at::Tensor& logits /*(B,T,V)*/, const at::Tensor& targets /*(B,T)*/,
                   int64_t image_token_id);

// (B,T) bool: the targets text_loss counts.
at::Tensor counted_targets(const at::Tensor& targets /*(B,T)*/, int64_t image_token_id);

}  // namespace muse::model
