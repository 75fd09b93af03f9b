#include "tests/data/image_files.h"

#include <gtest/gtest.h>

#include <fstream>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace muse::testing {

std::vector<uint8_t> encode_image(const data::Image& image, bool jpeg) {
  std::vector<uint8_t> out;
  const auto append = [](void* context, void* data, int size) {
    auto* bytes = static_cast<std::vector<uint8_t>*>(context);
    bytes->insert(bytes->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  const int w = static_cast<int>(image.width), h = static_cast<int>(image.height);
  const int c = static_cast<int>(image.channels);
  const int ok = jpeg ? stbi_write_jpg_to_func(append, &out, w, h, c, image.pixels.data(), 95)
                      : stbi_write_png_to_func(append, &out, w, h, c, image.pixels.data(), w * c);
  EXPECT_NE(ok, 0);
  return out;
}

void write_png(const std::filesystem::path& path, const data::Image& image) {
  const auto png = encode_image(image, false);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  EXPECT_TRUE(out) << path;
}

}  // namespace muse::testing
