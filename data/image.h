// Images for the shards: PNG and JPEG decoding (stb_image), channel
// conversion and area resampling to the shard's fixed size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace muse::data {

// Pixels in row-major (H, W, C) order, 8 bits per channel.
struct Image {
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;  // (H, W, C)
};

// Decodes a PNG or JPEG file held in `bytes` into `channels` channels: 1
// (grayscale: stb_image's luma, (77 R + 150 G + 29 B) / 256) or 3 (RGB; a
// grayscale source is replicated). Alpha is dropped. Throws DataError with
// the decoder's reason.
Image decode_image(std::span<const uint8_t> bytes, int64_t channels);

// Reads and decodes `path`; DataError names the path ("not found", "cannot
// read", "cannot decode: REASON").
Image load_image(const std::filesystem::path& path, int64_t channels);

// A record's image as muse-data stores it and prompt sets load it: `name`
// (relative to `base_dir`, the JSONL file's directory, unless absolute) read,
// decoded to `channels` and area-resized to size x size. DataError as
// load_image.
Image load_record_image(const std::filesystem::path& base_dir, const std::string& name,
                        int64_t size, int64_t channels);

// Area (box) resampling to height x width: each output pixel is the mean of
// the source area it covers, weighted by overlap, rounded to nearest. Shrinking
// averages; enlarging by an integer factor repeats pixels as nearest-neighbour
// does. The aspect ratio is not kept: a non-square source is stretched.
Image resize_area(const Image& image, int64_t height, int64_t width);

}  // namespace muse::data
