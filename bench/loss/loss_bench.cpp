// The loss with and without the (N, V) logits: one loss + backward of N
// tokens of width C over a vocabulary of V, today's path (the whole logits,
// text_loss) and the chunked one (model/chunked_loss.h), interleaved
// repetition by repetition in one process. Prints a JSON line per run: the
// peak bytes above the inputs (the CPU allocator meter) and the seconds.
//
//   loss_bench V N C CHUNK REPS
//
// Shapes: N tokens, C width, V vocab.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "model/chunked_loss.h"
#include "trainer/memory_meter.h"

namespace {

using muse::trainer::cpu_memory_stats;

void run(const char* path, int64_t chunk, const at::Tensor& hidden, const at::Tensor& weight,
         const at::Tensor& targets, int64_t rep) {
  hidden.mutable_grad() = at::Tensor();
  weight.mutable_grad() = at::Tensor();
  const int64_t base = cpu_memory_stats().current_bytes;
  muse::trainer::reset_peak_cpu_memory();
  const auto start = std::chrono::steady_clock::now();
  const muse::model::HeadOutput head{.hidden = hidden, .output = weight};
  const at::Tensor loss =
      muse::model::head_text_loss(head, targets, /*image_token_id=*/-1, chunk).sum;
  loss.backward();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "{\"path\": \"%s\", \"chunk\": %lld, \"vocab\": %lld, \"tokens\": %lld, \"width\": %lld, "
      "\"rep\": %lld, \"peak_bytes\": %lld, \"seconds\": %.6f, \"loss\": %.9g}\n",
      path, static_cast<long long>(chunk), static_cast<long long>(weight.size(0)),
      static_cast<long long>(hidden.size(1)), static_cast<long long>(hidden.size(2)),
      static_cast<long long>(rep), static_cast<long long>(cpu_memory_stats().peak_bytes - base),
      seconds, loss.item<double>());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  muse::trainer::track_cpu_memory();
  if (argc != 6) {
    std::fprintf(stderr, "usage: loss_bench V N C CHUNK REPS\n");
    return 2;
  }
  const int64_t V = std::atoll(argv[1]), N = std::atoll(argv[2]), C = std::atoll(argv[3]),
                chunk = std::atoll(argv[4]), reps = std::atoll(argv[5]);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  // The final norm's output and an initialised output projection, leaves.
  const at::Tensor hidden = at::randn({1, N, C}, gen).requires_grad_();        // (1,N,C)
  const at::Tensor weight = (at::randn({V, C}, gen) * 0.02).requires_grad_();  // (V,C)
  const at::Tensor targets = at::randint(0, V, {1, N}, gen, at::kLong);        // (1,N)
  for (int64_t rep = 0; rep < reps; ++rep) {
    run("logits", 0, hidden, weight, targets, rep);
    run("chunked", chunk, hidden, weight, targets, rep);
  }
  return 0;
}
