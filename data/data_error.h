// The error of bad input data: a malformed record, a missing or undecodable
// image, a shard file that fails validation, a loader state that does not fit
// the data. what() is one line naming the file (and line or dataset) at fault.
#pragma once

#include <stdexcept>

namespace muse::data {

class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace muse::data
