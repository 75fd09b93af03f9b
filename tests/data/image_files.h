// PNG and JPEG files for tests, encoded with stb_image_write: what the
// decoders of data/image.h read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "data/image.h"

namespace muse::testing {

// `image` as a PNG, or as a JPEG of quality 95.
std::vector<uint8_t> encode_image(const data::Image& image, bool jpeg);

// Writes `image` as a PNG file.
void write_png(const std::filesystem::path& path, const data::Image& image);

}  // namespace muse::testing
