// The communicator of a world of one rank: every collective is the identity
// and no MPI or NCCL call is made.
#pragma once

#include "comm/communicator.h"

namespace muse::comm {

class SoloCommunicator final : public Communicator {
 public:
  SoloCommunicator() : Communicator(0, 1) {}
  std::string_view backend() const override { return "solo"; }

 protected:
  std::unique_ptr<Work> launch(Call call) override;
};

}  // namespace muse::comm
