// model_dump DIR: writes, for a tied and an untied model, every weight, a set
// of inputs (text only and text + images, with and without segment ids), and
// the C++ model's logits and loss on them, as raw little-endian .bin files with
// DIR/{tied,untied}/manifest.json describing them. oracle.py recomputes the
// logits with an independent PyTorch implementation and compares.
//
// Shapes: B batch, T time, V vocab, S_img image side, Ch image channels,
// N_img images.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <bit>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "config/schema.h"
#include "model/model.h"

namespace fs = std::filesystem;
using namespace muse::model;
using at::indexing::Slice;

static_assert(std::endian::native == std::endian::little, "the .bin files are little-endian");

namespace {

constexpr int64_t kB = 3, kT = 24;

ModelConfig oracle_config(bool tied) {
  ModelConfig c;
  c.preset = "custom";
  c.vocab_size = 97;
  c.dim = 48;
  c.n_layers = 2;
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.ffn_hidden = 80;
  c.max_seq_len = 64;
  c.rope_theta = 500;  // not the default, so a wrong base shows
  c.tie_embeddings = tied;
  c.image_size = 8;
  c.patch_size = 4;
  c.image_channels = 3;  // RGB, so the flattening order of patches matters
  c.image_token_id = 5;
  c.init_std = 0.05;
  return c;
}

// Writes `t` to DIR/NAME.bin and returns its manifest entry.
std::string write_tensor(const fs::path& dir, const std::string& name, const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU).contiguous();
  std::ofstream out(dir / (name + ".bin"), std::ios::binary);
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  if (!out) throw std::runtime_error("cannot write " + (dir / (name + ".bin")).string());
  std::string dtype = c.scalar_type() == at::kFloat  ? "float32"
                      : c.scalar_type() == at::kLong ? "int64"
                                                     : "uint8";
  std::ostringstream entry;
  entry << "{\"file\": \"" << name << ".bin\", \"dtype\": \"" << dtype << "\", \"shape\": [";
  for (int64_t i = 0; i < c.dim(); ++i)
    entry << (i ? ", " : "") << c.size(i);
  entry << "]}";
  return entry.str();
}

// Norm gains of 1 and zero biases would hide a misuse of either: draw them.
void perturb_vectors(const Model& m, at::Generator& gen) {
  at::NoGradGuard no_grad;
  for (size_t u = 0; u < m.layout().size(); ++u) {
    for (const auto& p : m.layout()[u].params) {
      at::Tensor v = m.flat_params()[u].narrow(0, p.offset, p.numel);
      if (p.row->init == ParamInit::kOnes) v.uniform_(0.5, 1.5, gen);
      if (p.row->init == ParamInit::kZeros) v.normal_(0.0, 0.1, gen);
    }
  }
}

struct Case {
  std::string name;
  Inputs in;
};

std::vector<Case> make_cases(const ModelConfig& cfg, at::Generator& gen) {
  const int64_t img = cfg.image_token_id;
  const at::Tensor text = at::randint(img + 1, cfg.vocab_size, {kB, kT}, gen, at::kLong);
  // Row 1 reuses id 4 for two separate runs: they are different segments.
  const at::Tensor seg_text =
      at::tensor({0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                  4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4,
                  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
                 at::kLong)
          .view({kB, kT});
  // Row 0: one image at 3 and two back to back at 12; row 1: one at 18; row 2: none.
  at::Tensor with_images = text.clone();
  with_images.index_put_({0, Slice(3, 7)}, img);
  with_images.index_put_({0, Slice(12, 20)}, img);
  with_images.index_put_({1, Slice(18, 22)}, img);
  const at::Tensor images =
      at::randint(0, 256, {4, cfg.image_size, cfg.image_size, cfg.image_channels}, gen, at::kByte);
  const at::Tensor slots = at::tensor({0, 3, 0, 12, 0, 16, 1, 18}, at::kLong).view({4, 2});
  // Images inside segments: row 0 splits between its images, row 1's image
  // starts a segment's third position.
  at::Tensor seg_images = at::zeros({kB, kT}, at::kLong);
  seg_images.index_put_({0, Slice(10, kT)}, 1);
  seg_images.index_put_({1, Slice(16, kT)}, 8);
  return {
      {"text", {.tokens = text}},
      {"text_segments", {.tokens = text, .segment_ids = seg_text}},
      {"images", {.tokens = with_images, .images = images, .image_slots = slots}},
      {"images_segments",
       {.tokens = with_images, .segment_ids = seg_images, .images = images, .image_slots = slots}},
  };
}

void dump(const fs::path& dir, bool tied) {
  fs::create_directories(dir);
  const ModelConfig cfg = oracle_config(tied);
  const Model m(cfg, 1234);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(tied ? 1 : 2);
  perturb_vectors(m, gen);

  std::ostringstream manifest;
  manifest << "{\n\"config\": {";
  const auto fields = muse::config::describe_fields(cfg);
  for (size_t i = 0; i < fields.size(); ++i)
    manifest << (i ? ", " : "") << "\"" << fields[i].path << "\": " << fields[i].value;
  manifest << "},\n\"params\": {";
  int64_t n = 0;
  for (size_t u = 0; u < m.layout().size(); ++u) {
    for (const auto& p : m.layout()[u].params) {
      manifest << (n ? ",\n  " : "\n  ") << "\"" << p.name << "\": "
               << write_tensor(dir, "param" + std::to_string(n),
                               param_view(m.layout()[u], m.flat_params()[u], p.id));
      ++n;
    }
  }
  manifest << "},\n\"cases\": [";
  std::vector<Case> cases = make_cases(cfg, gen);
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    at::Tensor targets = at::randint(0, cfg.vocab_size, {kB, kT}, gen, at::kLong);
    targets.index_put_({Slice(), Slice(0, kT, 5)}, -100);
    targets.index_put_({Slice(), Slice(1, kT, 7)}, cfg.image_token_id);
    at::NoGradGuard no_grad;
    const at::Tensor logits = m.forward(k.in);  // (B,T,V)
    const double loss = m.loss(k.in, targets).item<double>();
    const auto entry = [&](const char* what, const at::Tensor& t) {
      return t.defined() ? write_tensor(dir, k.name + "_" + what, t) : std::string("null");
    };
    manifest << (c ? ",\n" : "\n") << "{\"name\": \"" << k.name << "\", "
             << "\"tokens\": " << entry("tokens", k.in.tokens) << ", "
             << "\"segment_ids\": " << entry("segment_ids", k.in.segment_ids) << ", "
             << "\"images\": " << entry("images", k.in.images) << ", "
             << "\"image_slots\": " << entry("image_slots", k.in.image_slots) << ", "
             << "\"targets\": " << entry("targets", targets) << ", "
             << "\"logits\": " << entry("logits", logits) << ", "
             << "\"loss\": " << muse::config::format_value(loss) << "}";
  }
  manifest << "\n]\n}\n";
  std::ofstream(dir / "manifest.json") << manifest.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::string(argv[1]) == "--help") {
    std::cerr << "usage: model_dump DIR\n"
                 "Writes a tied and an untied model's weights, inputs, logits and loss to\n"
                 "DIR/{tied,untied}/ (manifest.json + little-endian .bin files).\n";
    return argc == 2 ? 0 : 2;
  }
  try {
    dump(fs::path(argv[1]) / "tied", true);
    dump(fs::path(argv[1]) / "untied", false);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
