// What muse-data reads before it writes shards: JSON Lines records and images
// (decoding, channel conversion, area resampling).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "data/data_error.h"
#include "data/image.h"
#include "data/jsonl.h"
#include "tests/data/image_files.h"

namespace {

namespace fs = std::filesystem;
using muse::data::count_image_markers;
using muse::data::DataError;
using muse::data::decode_image;
using muse::data::Image;
using muse::data::load_image;
using muse::data::parse_fields;
using muse::data::parse_record;
using muse::data::resize_area;

using muse::testing::encode_image;

Image make(int64_t h, int64_t w, int64_t c, std::vector<uint8_t> pixels) {
  return {h, w, c, std::move(pixels)};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Image, PngRoundTripsAndConvertsChannels) {
  const Image rgb = make(1, 2, 3, {255, 0, 0, 10, 20, 30});
  const auto png = encode_image(rgb, false);
  const Image back = decode_image(png, 3);
  EXPECT_EQ(back.height, 1);
  EXPECT_EQ(back.width, 2);
  EXPECT_EQ(back.pixels, rgb.pixels);
  // stb_image's luma: (77 R + 150 G + 29 B) >> 8.
  const Image gray = decode_image(png, 1);
  EXPECT_EQ(gray.channels, 1);
  EXPECT_EQ(gray.pixels, (std::vector<uint8_t>{76, (77 * 10 + 150 * 20 + 29 * 30) >> 8}));
  // A grayscale source is replicated into RGB.
  const Image replicated = decode_image(encode_image(make(1, 1, 1, {42}), false), 3);
  EXPECT_EQ(replicated.pixels, (std::vector<uint8_t>{42, 42, 42}));
}

TEST(Image, JpegDecodes) {
  const Image flat = make(8, 8, 3, std::vector<uint8_t>(8 * 8 * 3, 128));
  const Image back = decode_image(encode_image(flat, true), 3);
  ASSERT_EQ(back.pixels.size(), flat.pixels.size());
  for (const uint8_t v : back.pixels)
    EXPECT_NEAR(v, 128, 2);
}

TEST(Image, UndecodableAndMissingFilesAreErrorsNamingThePath) {
  const std::vector<uint8_t> junk = {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'};
  EXPECT_EQ(error_of([&] { decode_image(junk, 3); }).rfind("cannot decode: ", 0), 0);
  const fs::path dir = fs::temp_directory_path() / ("muse-image-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "junk.png") << "junk";
  EXPECT_EQ(error_of([&] {
              load_image(dir / "junk.png", 3);
            }).rfind("image '" + (dir / "junk.png").string() + "': cannot decode: ", 0),
            0);
  EXPECT_EQ(error_of([&] { load_image(dir / "absent.png", 3); }),
            "image '" + (dir / "absent.png").string() + "' not found");
  const auto png = encode_image(make(1, 1, 1, {9}), false);
  std::ofstream(dir / "ok.png", std::ios::binary)
      .write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  EXPECT_EQ(load_image(dir / "ok.png", 1).pixels, std::vector<uint8_t>{9});
  fs::remove_all(dir);
}

TEST(Image, AreaResizeAveragesWhenShrinking) {
  const Image src = make(2, 4, 1, {0, 10, 20, 30, 40, 50, 60, 70});
  const Image out = resize_area(src, 1, 2);
  EXPECT_EQ(out.pixels, (std::vector<uint8_t>{25, 45}));  // (0+10+40+50)/4, (20+30+60+70)/4
  // A non-integer factor weights the pixels by overlap: 3 -> 2 covers
  // [0, 1.5) and [1.5, 3).
  const Image row = make(1, 3, 1, {0, 90, 180});
  EXPECT_EQ(resize_area(row, 1, 2).pixels, (std::vector<uint8_t>{30, 150}));
}

TEST(Image, AreaResizeRepeatsPixelsWhenEnlarging) {
  const Image src = make(1, 2, 3, {1, 2, 3, 4, 5, 6});
  const Image out = resize_area(src, 2, 4);
  EXPECT_EQ(out.pixels, (std::vector<uint8_t>{1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6,  //
                                              1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}));
  EXPECT_EQ(resize_area(src, 1, 2).pixels, src.pixels);
}

TEST(Jsonl, ParsesTextAndImages) {
  const auto r = parse_record(R"({"text": "<image> the digit seven", "images": ["d/7.png"],
                                   "answer": "7"})");
  EXPECT_EQ(r.text, "<image> the digit seven");
  EXPECT_EQ(r.images, std::vector<std::string>{"d/7.png"});
  EXPECT_TRUE(parse_record(R"({"text": "plain"})").images.empty());
  EXPECT_EQ(count_image_markers("<image><image> and <image>"), 3);
}

TEST(Jsonl, BadRecordsSayWhatIsWrong) {
  const auto problem = [](std::string_view line) { return error_of([&] { parse_record(line); }); };
  EXPECT_EQ(problem(R"({"text": "a",)").rfind("malformed JSON: column ", 0), 0) << problem("{");
  EXPECT_EQ(problem(R"(["text"])"), "expected a JSON object, got array");
  EXPECT_EQ(problem(R"({"images": []})"), "missing \"text\"");
  EXPECT_EQ(problem(R"({"text": 3})"), "\"text\" must be a string, got number");
  EXPECT_EQ(problem(R"({"text": "x", "images": "a.png"})"),
            "\"images\" must be a list of paths, got string");
  EXPECT_EQ(problem(R"({"text": "x <image>", "images": [1]})"),
            "\"images\" must be a list of paths, found number");
  EXPECT_EQ(problem(R"({"text": "<image> <image>", "images": ["a.png"]})"),
            "\"text\" has 2 <image> marker(s) but \"images\" lists 1 image(s)");
  EXPECT_EQ(problem(R"({"text": "no marker", "images": ["a.png"]})"),
            "\"text\" has 0 <image> marker(s) but \"images\" lists 1 image(s)");
}

TEST(Jsonl, ParsesNamedFieldsWithTheImagesInTheFirst) {
  const std::string keys[] = {"prompt", "solution"};
  const auto r = parse_fields(R"({"prompt": "Add: <image> <image>", "solution": "<think>4</think>",
                                  "images": ["a.png", "b.png"], "text": "unused"})",
                              keys);
  EXPECT_EQ(r.values, (std::vector<std::string>{"Add: <image> <image>", "<think>4</think>"}));
  EXPECT_EQ(r.images, (std::vector<std::string>{"a.png", "b.png"}));

  const auto problem = [&](std::string_view line) {
    return error_of([&] { parse_fields(line, keys); });
  };
  EXPECT_EQ(problem(R"({"prompt": "x"})"), "missing \"solution\"");
  EXPECT_EQ(problem(R"({"prompt": "x", "solution": ["y"]})"),
            "\"solution\" must be a string, got array");
  EXPECT_EQ(problem(R"({"prompt": "x", "solution": "y", "images": ["a.png"]})"),
            "\"prompt\" has 0 <image> marker(s) but \"images\" lists 1 image(s)");
  EXPECT_EQ(problem(R"({"prompt": "<image>", "solution": "<image>", "images": ["a.png"]})"),
            "\"solution\" holds an <image> marker: images belong in \"prompt\"");
}

}  // namespace
