// The loader side of bench/data/run.sh: how many batches per second
// data::Loader delivers on one rank, with the options the pretraining
// trainer gives it (trainer/pretrain.cpp: data.* plus the model's vocabulary,
// image size and placeholders per image), one JSON line per repetition.
//
//   data_bench --shards DIR [--preset tiny] [--image-size N --patch-size N
//              --image-channels N] [--batch 8] [--seq-len 256] [--batches 200]
//              [--reps 5]
//
// The loader is built once; each repetition then times `batches` calls of
// next() on the continuing stream (so epoch boundaries, where the next
// epoch is shuffled and packed, fall inside the timing as in training).
// The first line reports the construction (opening and indexing the
// shards), the packing of epoch 0 and the stream's size.
#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "data/data_config.h"
#include "data/loader.h"
#include "model/model_config.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    muse::data::DataConfig data;
    std::string preset = "tiny";
    int64_t image_size = 0, patch_size = 0, image_channels = 0, batches = 200, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string flag = argv[i], value = argv[i + 1];
      if (flag == "--shards") {
        data.shards = value;
      } else if (flag == "--preset") {
        preset = value;
      } else if (flag == "--image-size") {
        image_size = std::stoll(value);
      } else if (flag == "--patch-size") {
        patch_size = std::stoll(value);
      } else if (flag == "--image-channels") {
        image_channels = std::stoll(value);
      } else if (flag == "--batch") {
        data.batch_size = std::stoll(value);
      } else if (flag == "--seq-len") {
        data.seq_len = std::stoll(value);
      } else if (flag == "--batches") {
        batches = std::stoll(value);
      } else if (flag == "--reps") {
        reps = std::stoll(value);
      } else {
        throw std::invalid_argument("unknown flag " + flag);
      }
    }
    muse::model::ModelConfig model = muse::model::preset_config(preset);
    if (image_size > 0) model.image_size = image_size;
    if (patch_size > 0) model.patch_size = patch_size;
    if (image_channels > 0) model.image_channels = image_channels;
    model.validate();

    // As trainer/pretrain.cpp's loader_options_for, on one rank.
    muse::data::LoaderOptions options = muse::data::loader_options(data);
    options.image_tokens = model.n_patches();
    options.vocab_size = model.vocab_size;
    options.image_size = model.image_size;
    options.image_channels = model.image_channels;

    auto start = Clock::now();
    muse::data::Loader loader(options, 0, 1, 1234);
    const double open_seconds = seconds_since(start);
    start = Clock::now();
    const int64_t sequences = loader.sequences_in_epoch(0);  // shuffles and packs epoch 0
    const double plan_seconds = seconds_since(start);
    std::cout << json{{"what", "open"},
                      {"seconds", open_seconds},
                      {"plan_seconds", plan_seconds},
                      {"documents", loader.n_documents()},
                      {"tokens", loader.n_tokens()},
                      {"sequences_per_epoch", sequences}}
                     .dump()
              << std::endl;
    for (int64_t rep = 0; rep < reps; ++rep) {
      int64_t images = 0;
      start = Clock::now();
      for (int64_t b = 0; b < batches; ++b)
        images += loader.next().images.size(0);
      const double seconds = seconds_since(start);
      std::cout << json{{"what", "batches"},  {"rep", rep},       {"batches", batches},
                        {"seconds", seconds}, {"images", images}, {"epoch", loader.state().epoch}}
                       .dump()
                << std::endl;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "data_bench: " << e.what() << '\n';
    return 1;
  }
}
