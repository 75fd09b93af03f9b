// Tests of config/files.h: atomic file replacement.
#include "config/files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/temp_dir.h"

namespace muse::config {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class WriteFileAtomic : public ::testing::Test {
 protected:
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // Names in the directory other than `keep`, e.g. leftover temporary files.
  std::vector<std::string> others(const std::string& keep) const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name != keep) names.push_back(name);
    }
    return names;
  }

  muse::testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
};

TEST_F(WriteFileAtomic, WritesContent) {
  const fs::path p = dir_ / "config.yaml";
  write_file_atomic(p, "stage: sft\n");
  EXPECT_EQ(read(p), "stage: sft\n");
  EXPECT_TRUE(others("config.yaml").empty());
}

TEST_F(WriteFileAtomic, ReplacesExistingContent) {
  const fs::path p = dir_ / "LATEST";
  { std::ofstream(p) << "a much longer old content that must not survive in part\n"; }
  write_file_atomic(p, "step_000010");
  EXPECT_EQ(read(p), "step_000010");
  write_file_atomic(p, "");
  EXPECT_EQ(read(p), "");
  EXPECT_TRUE(fs::exists(p));
  EXPECT_TRUE(others("LATEST").empty());
}

TEST_F(WriteFileAtomic, BinaryAndLargeContent) {
  const fs::path p = dir_ / "blob";
  std::string content(3 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i)
    content[i] = static_cast<char>(i * 131 % 251);
  write_file_atomic(p, content);
  EXPECT_EQ(read(p), content);
  EXPECT_EQ(fs::file_size(p), content.size());
}

TEST_F(WriteFileAtomic, LeavesNoTemporaryFiles) {
  const fs::path p = dir_ / "metrics.json";
  for (int i = 0; i < 5; ++i)
    write_file_atomic(p, "{\"i\": " + std::to_string(i) + "}");
  EXPECT_EQ(read(p), "{\"i\": 4}");
  for (const auto& name : others("metrics.json")) {
    EXPECT_EQ(name.find(".tmp."), std::string::npos) << "left behind: " << name;
  }
  EXPECT_TRUE(others("metrics.json").empty());
}

TEST_F(WriteFileAtomic, MissingDirectoryThrowsNamingThePath) {
  const fs::path p = dir_ / "no_such_dir" / "config.yaml";
  try {
    write_file_atomic(p, "x");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(p.string()));
    EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(dir_ / "no_such_dir"));
}

TEST_F(WriteFileAtomic, FailureLeavesExistingTargetUnchanged) {
  const fs::path p = dir_ / "config.yaml";
  { std::ofstream(p) << "old content\n"; }
  // Block the temporary file: a directory where it would be created.
  const fs::path blocker = p.string() + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  fs::create_directory(blocker);
  EXPECT_THROW(
      {
        try {
          write_file_atomic(p, "new content\n");
        } catch (const std::runtime_error& e) {
          EXPECT_THAT(e.what(), HasSubstr(p.string()));
          throw;
        }
      },
      std::runtime_error);
  EXPECT_EQ(read(p), "old content\n");
}

TEST_F(WriteFileAtomic, RenameOntoADirectoryFailsAndCleansUp) {
  const fs::path p = dir_ / "target";
  fs::create_directory(p);
  EXPECT_THROW(
      {
        try {
          write_file_atomic(p, "x");
        } catch (const std::runtime_error& e) {
          EXPECT_THAT(e.what(), HasSubstr(p.string()));
          throw;
        }
      },
      std::runtime_error);
  EXPECT_TRUE(fs::is_directory(p));
  EXPECT_TRUE(others("target").empty()) << "temporary file left behind";
}

}  // namespace
}  // namespace muse::config
