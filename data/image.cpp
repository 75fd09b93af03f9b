#include "data/image.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "data/data_error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#include <stb/stb_image.h>

namespace muse::data {
namespace {

// The source pixels one output pixel covers along one axis: pixels first,
// first + 1, ... with the share of the footprint each one takes.
struct Footprint {
  int64_t first = 0;
  std::vector<double> weights;  // sums to 1
};

std::vector<Footprint> footprints(int64_t n_in, int64_t n_out) {
  std::vector<Footprint> out(static_cast<size_t>(n_out));
  const double scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  for (int64_t o = 0; o < n_out; ++o) {
    const double a = static_cast<double>(o) * scale, b = static_cast<double>(o + 1) * scale;
    Footprint& f = out[static_cast<size_t>(o)];
    f.first = static_cast<int64_t>(std::floor(a));
    const int64_t last = std::min(n_in - 1, static_cast<int64_t>(std::ceil(b)) - 1);
    for (int64_t i = f.first; i <= last; ++i) {
      const double overlap =
          std::min(b, static_cast<double>(i + 1)) - std::max(a, static_cast<double>(i));
      f.weights.push_back(overlap / scale);
    }
  }
  return out;
}

}  // namespace

Image decode_image(std::span<const uint8_t> bytes, int64_t channels) {
  if (channels != 1 && channels != 3)
    throw std::invalid_argument("decode_image: channels must be 1 or 3");
  int width = 0, height = 0, source_channels = 0;
  stbi_uc* pixels = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &width,
                                          &height, &source_channels, static_cast<int>(channels));
  if (pixels == nullptr) throw DataError(std::string("cannot decode: ") + stbi_failure_reason());
  Image image;
  image.height = height;
  image.width = width;
  image.channels = channels;
  image.pixels.assign(pixels, pixels + static_cast<size_t>(height) * width * channels);
  stbi_image_free(pixels);
  return image;
}

Image load_image(const std::filesystem::path& path, int64_t channels) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw DataError("image '" + path.string() + "' not found");
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw DataError("image '" + path.string() + "': cannot read");
  try {
    return decode_image(bytes, channels);
  } catch (const DataError& e) {
    throw DataError("image '" + path.string() + "': " + e.what());
  }
}

Image load_record_image(const std::filesystem::path& base_dir, const std::string& name,
                        int64_t size, int64_t channels) {
  const std::filesystem::path path(name);
  return resize_area(load_image(path.is_absolute() ? path : base_dir / path, channels), size, size);
}

Image resize_area(const Image& image, int64_t height, int64_t width) {
  if (image.height == height && image.width == width) return image;
  const int64_t C = image.channels;
  const auto rows = footprints(image.height, height);
  const auto cols = footprints(image.width, width);
  // Horizontal pass into (H_in, W_out, C), then vertical into (H_out, W_out, C).
  std::vector<double> wide(static_cast<size_t>(image.height * width * C), 0.0);
  for (int64_t y = 0; y < image.height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      const Footprint& f = cols[static_cast<size_t>(x)];
      for (size_t i = 0; i < f.weights.size(); ++i) {
        const uint8_t* src = &image.pixels[static_cast<size_t>(
            (y * image.width + f.first + static_cast<int64_t>(i)) * C)];
        for (int64_t c = 0; c < C; ++c)
          wide[static_cast<size_t>((y * width + x) * C + c)] += f.weights[i] * src[c];
      }
    }
  }
  Image out;
  out.height = height;
  out.width = width;
  out.channels = C;
  out.pixels.resize(static_cast<size_t>(height * width * C));
  for (int64_t y = 0; y < height; ++y) {
    const Footprint& f = rows[static_cast<size_t>(y)];
    for (int64_t x = 0; x < width; ++x) {
      for (int64_t c = 0; c < C; ++c) {
        double sum = 0;
        for (size_t i = 0; i < f.weights.size(); ++i)
          sum +=
              f.weights[i] *
              wide[static_cast<size_t>(((f.first + static_cast<int64_t>(i)) * width + x) * C + c)];
        out.pixels[static_cast<size_t>((y * width + x) * C + c)] =
            static_cast<uint8_t>(std::clamp(std::lround(sum), 0L, 255L));
      }
    }
  }
  return out;
}

}  // namespace muse::data
