// libFuzzer target: muse-train's own checks of what a shard holds, behind
// its checksum. Raw bytes stop at the checksum (fuzz_shard). Here a valid
// shard is edited through the HDF5 API as the input says (attributes given
// other values or types, or deleted; dataset elements changed; datasets
// replaced by others of any type, rank and extent, by groups, or deleted)
// and sealed again: every check of the reader (data/shard.cpp) meets hostile
// content, while libhdf5 only ever parses files it wrote itself. Any input
// must read or raise DataError, never crash.
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "data/data_error.h"
#include "data/shard.h"
#include "data/shard_checksum.h"

namespace {

namespace data = muse::data;

constexpr const char* kNames[] = {"format",       "version",     "vocab_size",  "image_token_id",
                                  "pad_token_id", "n_tokens",    "n_documents", "n_images",
                                  "tokens",       "doc_offsets", "images",      "image_positions",
                                  "loss_starts"};
constexpr int kMaxEdits = 12;
constexpr hsize_t kMaxExtent = 8;  // per dimension of a replaced dataset

// Three documents with two 2x2 grayscale images and loss starts: every
// dataset and attribute a shard can have.
std::string valid_shard_bytes() {
  data::Shard s;
  s.vocab_size = 16;
  s.image_token_id = 3;
  s.pad_token_id = 2;
  s.image_height = 2;
  s.image_width = 2;
  s.image_channels = 1;
  s.add_document(std::vector<int32_t>{0, 5, 6, 1}, {});
  s.add_document(std::vector<int32_t>{0, 3, 7, 3, 1}, std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8},
                 2);
  s.add_document(std::vector<int32_t>{0, 15, 1}, {}, 1);
  const std::string path = "/tmp/muse_fuzz_shard_content_base_" + std::to_string(::getpid());
  data::write_shard(path, s);
  std::ifstream in(path, std::ios::binary);
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ::unlink(path.c_str());
  return bytes;
}

hid_t element_type(FuzzedDataProvider& in) {
  const hid_t types[] = {H5T_STD_I64LE, H5T_STD_I32LE, H5T_STD_U8LE,   H5T_STD_U64LE,
                         H5T_STD_I8LE,  H5T_STD_I64BE, H5T_IEEE_F64LE, H5T_IEEE_F32LE};
  return types[in.ConsumeIntegralInRange<size_t>(0, std::size(types) - 1)];
}

void remove_name(hid_t file, const char* name) {
  if (H5Aexists(file, name) > 0) H5Adelete(file, name);
  if (H5Lexists(file, name, H5P_DEFAULT) > 0) H5Ldelete(file, name, H5P_DEFAULT);
}

// A root attribute `name`: a number of any element type, or a string.
void set_attribute(hid_t file, const char* name, FuzzedDataProvider& in) {
  remove_name(file, name);
  const hid_t scalar = H5Screate(H5S_SCALAR);
  if (in.ConsumeBool()) {
    const hid_t type = element_type(in);
    const int64_t value = in.ConsumeIntegralInRange<int64_t>(-3, 40);
    const hid_t attr = H5Acreate2(file, name, type, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_INT64, &value);
    H5Aclose(attr);
  } else {
    const std::string text = in.ConsumeRandomLengthString(16);
    const hid_t type = H5Tcopy(H5T_C_S1);
    const bool variable = in.ConsumeBool();
    H5Tset_size(type, variable ? H5T_VARIABLE : text.size() + 1);
    const hid_t attr = H5Acreate2(file, name, type, scalar, H5P_DEFAULT, H5P_DEFAULT);
    const char* pointer = text.c_str();
    H5Awrite(attr, type, variable ? static_cast<const void*>(&pointer) : pointer);
    H5Aclose(attr);
    H5Tclose(type);
  }
  H5Sclose(scalar);
}

// One element of dataset `name`, whatever its shape, set to any value.
void set_element(hid_t file, const char* name, FuzzedDataProvider& in) {
  const hsize_t index = in.ConsumeIntegralInRange<hsize_t>(0, 63);
  const int64_t value = in.ConsumeIntegral<int64_t>();
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return;
  const hid_t set = H5Dopen2(file, name, H5P_DEFAULT);
  if (set < 0) return;
  const hid_t space = H5Dget_space(set);
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0))), at(dims.size());
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  hsize_t rest = index, count = 1;
  for (size_t d = dims.size(); d > 0; --d) {
    count *= dims[d - 1];
    at[d - 1] = dims[d - 1] > 0 ? rest % dims[d - 1] : 0;
    rest = dims[d - 1] > 0 ? rest / dims[d - 1] : 0;
  }
  if (rank > 0 && index < count) {
    H5Sselect_elements(space, H5S_SELECT_SET, 1, at.data());
    const hsize_t one = 1;
    const hid_t memory = H5Screate_simple(1, &one, nullptr);
    H5Dwrite(set, H5T_NATIVE_INT64, memory, space, H5P_DEFAULT, &value);
    H5Sclose(memory);
  }
  H5Sclose(space);
  H5Dclose(set);
}

// Dataset `name` replaced by one of any element type, rank 0 to 4 and
// extents up to kMaxExtent, holding small values.
void replace_dataset(hid_t file, const char* name, FuzzedDataProvider& in) {
  remove_name(file, name);
  const hid_t type = element_type(in);
  const int rank = in.ConsumeIntegralInRange<int>(0, 4);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  hsize_t count = 1;
  for (hsize_t& d : dims) {
    d = in.ConsumeIntegralInRange<hsize_t>(0, kMaxExtent);
    count *= d;
  }
  std::vector<int64_t> values(count);
  for (int64_t& v : values)
    v = in.ConsumeIntegralInRange<int64_t>(-2, 20);
  const hid_t space =
      rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims.data(), nullptr);
  const hid_t set = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (count > 0) H5Dwrite(set, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(set);
  H5Sclose(space);
}

void edit(hid_t file, FuzzedDataProvider& in) {
  for (int n = 0; n < kMaxEdits && in.remaining_bytes() > 0; ++n) {
    const char* name = kNames[in.ConsumeIntegralInRange<size_t>(0, std::size(kNames) - 1)];
    switch (in.ConsumeIntegralInRange<int>(0, 4)) {
      case 0:
        set_attribute(file, name, in);
        break;
      case 1:
        set_element(file, name, in);
        break;
      case 2:
        replace_dataset(file, name, in);
        break;
      case 3:
        remove_name(file, name);
        break;
      default:  // a group where a dataset belongs
        remove_name(file, name);
        H5Gclose(H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  static const std::string base = valid_shard_bytes();
  static const std::string path = "/tmp/muse_fuzz_shard_content_" + std::to_string(::getpid());
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << base;
  FuzzedDataProvider in(bytes, size);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0) __builtin_trap();  // the valid shard must open
  edit(file, in);
  if (H5Fclose(file) < 0) __builtin_trap();
  data::seal_shard_file(path);
  try {
    (void)data::read_shard(path);
  } catch (const data::DataError&) {
  }
  return 0;
}
