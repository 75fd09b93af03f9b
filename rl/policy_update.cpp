#include "rl/policy_update.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "comm/agree.h"
#include "model/chunked_loss.h"
#include "model/generate.h"

// Shapes: B responses of a micro-batch, W padded sequence width, R longest
// response, V vocab.

namespace muse::rl {
namespace {

// One forward/backward's worth of responses, each a left-padded row
// prompt + response, its response tokens right-aligned in (B, R).
struct MicroBatch {
  model::Inputs inputs;
  at::Tensor targets;        // (B,R) int64: the response tokens
  at::Tensor mask;           // (B,R) fp32: 1 on response tokens
  at::Tensor advantages;     // (B) fp32
  std::vector<size_t> rows;  // index of each row's sample
  int64_t longest = 1;       // R
};

// The rows `rows` of `samples`; no rows gives a one-row batch whose mask is
// all 0, so a rank with nothing left still joins the collectives.
MicroBatch make_micro_batch(const model::ModelConfig& cfg, std::span<const Sample> samples,
                            std::vector<size_t> rows, at::Device device) {
  MicroBatch mb;
  std::vector<model::Prompt> seqs;
  int64_t width = 2;
  for (size_t i : rows) {
    const Sample& s = samples[i];
    std::vector<int64_t> tokens = s.prompt;
    tokens.insert(tokens.end(), s.response.begin(), s.response.end());
    width = std::max<int64_t>(width, static_cast<int64_t>(tokens.size()));
    mb.longest = std::max<int64_t>(mb.longest, static_cast<int64_t>(s.response.size()));
    seqs.push_back({.tokens = std::move(tokens), .images = s.images, .max_new_tokens = 0});
  }
  const int64_t B = std::max<int64_t>(1, static_cast<int64_t>(rows.size()));
  if (rows.empty()) seqs.push_back({.tokens = {0, 0}, .images = {}, .max_new_tokens = 0});
  mb.inputs = model::left_padded_inputs(cfg, seqs, width, device);
  mb.targets = at::zeros({B, mb.longest}, at::kLong);
  mb.mask = at::zeros({B, mb.longest}, at::kFloat);
  mb.advantages = at::zeros({B}, at::kFloat);
  for (size_t b = 0; b < rows.size(); ++b) {
    const Sample& s = samples[rows[b]];
    const int64_t n = static_cast<int64_t>(s.response.size());
    mb.targets[b].narrow(0, mb.longest - n, n).copy_(at::tensor(s.response, at::kLong));
    mb.mask[b].narrow(0, mb.longest - n, n).fill_(1);
    mb.advantages[b] = s.advantage;
  }
  mb.targets = mb.targets.to(device);
  mb.mask = mb.mask.to(device);
  mb.advantages = mb.advantages.to(device);
  mb.rows = std::move(rows);
  return mb;
}

// (B,R,V) fp32 log-softmax at the positions that predict the response tokens.
at::Tensor response_log_softmax(const at::Tensor& logits, const MicroBatch& mb) {
  const int64_t W = logits.size(1);
  return logits.narrow(1, W - mb.longest - 1, mb.longest).to(at::kFloat).log_softmax(-1);
}

at::Tensor gather_targets(const at::Tensor& log_softmax, const MicroBatch& mb) {
  return log_softmax.gather(-1, mb.targets.unsqueeze(-1)).squeeze(-1);  // (B,R)
}

// (B,R) fp32 log-probabilities of the response tokens and, with
// `with_entropy`, the entropies of their distributions (detached); 0 off the
// mask when chunked.
model::TokenLogprobs response_logprobs(const model::HeadOutput& head, const MicroBatch& mb,
                                       int64_t chunk_tokens, bool with_entropy) {
  if (chunk_tokens > 0) {
    const int64_t W = head.hidden.size(1);
    const model::HeadOutput response{
        .hidden = head.hidden.narrow(1, W - mb.longest - 1, mb.longest),
        .output = head.output};  // (B,R,C)
    return model::head_token_logprobs(response, mb.targets, mb.mask > 0, chunk_tokens,
                                      with_entropy);
  }
  const at::Tensor log_softmax = response_log_softmax(head.logits(), mb);  // (B,R,V)
  model::TokenLogprobs out{.logp = gather_targets(log_softmax, mb), .entropy = {}};
  if (with_entropy) {
    at::NoGradGuard no_grad;
    const at::Tensor lsm = log_softmax.detach();
    out.entropy = -(lsm.exp() * lsm).sum(-1);
  }
  return out;
}

// Per-sample (n_i) log-probabilities -> (B,R) right-aligned for `mb`.
at::Tensor right_aligned(const std::vector<at::Tensor>& per_sample, const MicroBatch& mb) {
  const int64_t B = mb.mask.size(0);
  at::Tensor out = at::zeros({B, mb.longest}, mb.mask.options());
  for (size_t b = 0; b < mb.rows.size(); ++b) {
    const at::Tensor& lp = per_sample[mb.rows[b]];
    out[b].narrow(0, mb.longest - lp.size(0), lp.size(0)).copy_(lp);
  }
  return out;
}

// The indices [begin, end) cut into micro-batches, as many on every rank
// (the most any rank needs; the others run empty ones).
std::vector<std::vector<size_t>> micro_batches(size_t begin, size_t end, int64_t micro,
                                               comm::Communicator& comm) {
  const int64_t local = (static_cast<int64_t>(end - begin) + micro - 1) / micro;
  const at::Tensor count = at::tensor({local}, at::kLong);
  comm.all_reduce(count, comm::ReduceOp::kMax);
  std::vector<std::vector<size_t>> out(count.item<int64_t>());
  for (size_t i = begin; i < end; ++i)
    out[(i - begin) / micro].push_back(i);
  return out;
}

// log pi(response tokens) of every sample under `model`, without autograd.
std::vector<at::Tensor> score_samples(trainer::FsdpModel& model, std::span<const Sample> samples,
                                      int64_t micro, int64_t chunk_tokens,
                                      comm::Communicator& comm) {
  std::vector<at::Tensor> out(samples.size());
  for (auto& rows : micro_batches(0, samples.size(), micro, comm)) {
    const MicroBatch mb =
        make_micro_batch(model.config(), samples, std::move(rows), model.options().device);
    const at::Tensor lp =
        chunk_tokens > 0
            ? response_logprobs(model.forward_head(mb.inputs), mb, chunk_tokens, false).logp
            : gather_targets(response_log_softmax(model.forward(mb.inputs), mb), mb);
    for (size_t b = 0; b < mb.rows.size(); ++b) {
      const int64_t n = static_cast<int64_t>(samples[mb.rows[b]].response.size());
      out[mb.rows[b]] = lp[b].narrow(0, mb.longest - n, n).clone();
    }
  }
  return out;
}

// Sums over a mini-batch's loss tokens, all-reduced as one vector.
enum UpdateSum : size_t { kLoss, kClipped, kKl, kRatio, kEntropy, kTokens, kUpdateSums };

}  // namespace

UpdateStats policy_update(trainer::TrainingState& state, trainer::FsdpModel* reference,
                          std::span<const Sample> samples, const UpdateOptions& options, double lr,
                          int64_t step_number, comm::Communicator& comm) {
  trainer::FsdpModel& model = state.model();
  // One pass over one rollout batch is on-policy: pi_old is the policy itself
  // (detached), and no extra forward is needed.
  const bool on_policy = options.mini_batches * options.epochs == 1;
  std::vector<at::Tensor> old_logp, ref_logp;
  const int64_t chunk = options.loss_chunk_tokens;
  if (!on_policy) old_logp = score_samples(model, samples, options.micro_batch, chunk, comm);
  if (reference != nullptr)
    ref_logp = score_samples(*reference, samples, options.micro_batch, chunk, comm);

  UpdateStats stats;
  std::vector<double> totals(kUpdateSums, 0.0);  // entropy and tokens: first epoch only
  const size_t n = samples.size();
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    for (int64_t k = 0; k < options.mini_batches; ++k) {
      const size_t begin = n * k / options.mini_batches, end = n * (k + 1) / options.mini_batches;
      double local_tokens = 0;
      for (size_t i = begin; i < end; ++i)
        local_tokens += static_cast<double>(samples[i].response.size());
      const std::vector<double> global =
          comm::sum_over_ranks(comm, {local_tokens, static_cast<double>(end - begin)});
      if (global[1] == 0) continue;  // the same on every rank
      const LossNormalizer norm{.tokens = std::max(1.0, global[0]),
                                .sequences = global[1],
                                .constant = options.loss_constant};
      model.zero_grad();
      std::vector<double> local(kUpdateSums, 0.0);
      for (auto& rows : micro_batches(begin, end, options.micro_batch, comm)) {
        const MicroBatch mb =
            make_micro_batch(model.config(), samples, std::move(rows), model.options().device);
        const at::Tensor loss = model.forward_backward(mb.inputs, [&](const model::HeadOutput& h) {
          const model::TokenLogprobs lp = response_logprobs(h, mb, chunk, epoch == 0);
          const at::Tensor& logp = lp.logp;
          const TokenBatch batch{
              .logp = logp,
              .old_logp = on_policy ? logp.detach() : right_aligned(old_logp, mb),
              .ref_logp = reference != nullptr ? right_aligned(ref_logp, mb) : at::Tensor(),
              .advantages = mb.advantages,
              .mask = mb.mask};
          const PolicyLoss pl = policy_loss(batch, options.loss, norm);
          local[kClipped] += pl.clipped_tokens;
          local[kKl] += pl.kl_sum;
          local[kRatio] += pl.ratio_sum;
          local[kTokens] += pl.tokens;
          if (epoch == 0) local[kEntropy] += (lp.entropy * mb.mask).sum().item<double>();
          return pl.loss;
        });
        local[kLoss] += loss.item<double>();
      }
      const std::vector<double> sums = comm::sum_over_ranks(comm, local);
      const trainer::Update update =
          state.step(sums[kLoss], lr, options.max_consecutive_skips, step_number);
      ++stats.optimizer_steps;
      stats.skipped_steps += update.skipped ? 1 : 0;
      stats.grad_norm = update.norm.norm;
      for (size_t j : {kLoss, kClipped, kKl, kRatio})
        totals[j] += sums[j];
      if (epoch == 0) {
        totals[kEntropy] += sums[kEntropy];
        totals[kTokens] += sums[kTokens];
      }
    }
  }
  if (stats.optimizer_steps == 0) return stats;
  const double all_tokens = std::max(1.0, totals[kTokens] * static_cast<double>(options.epochs));
  stats.loss = totals[kLoss] / static_cast<double>(stats.optimizer_steps);
  stats.clip_fraction = totals[kClipped] / all_tokens;
  stats.kl_mean = totals[kKl] / all_tokens;
  stats.ratio_mean = totals[kRatio] / all_tokens;
  stats.entropy_mean = totals[kEntropy] / std::max(1.0, totals[kTokens]);
  stats.tokens = totals[kTokens];
  return stats;
}

}  // namespace muse::rl
