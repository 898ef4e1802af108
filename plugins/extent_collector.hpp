// The ExtentSink the host hands to Plugin::extents(): it turns whatever the plugin reports
// into what the wire needs: extents contiguous from the request offset, clipped to the
// request, adjacent equal types merged, at most `max` entries (0: no cap), and only one
// when req_one asks for it. A gap (an extent starting past the covered range) is a plugin
// bug and ends collection; the host then fails the call with EIO.
#pragma once
#include <cstdint>
#include <vector>

#include "core/plugin_call.hpp"
#include "plugins/plugin_api.hpp"

namespace nbdd::plugin {

class ExtentCollector final : public ExtentSink {
 public:
  ExtentCollector(std::vector<core::Extent>& out, std::uint64_t offset, std::uint64_t count,
                  std::uint32_t max, bool req_one)
      : out_(out), cursor_(offset), end_(offset + count), max_(max), req_one_(req_one) {}

  bool add(std::uint64_t offset, std::uint64_t length, std::uint32_t type) override;

  bool saw_gap() const { return gap_; }
  std::uint64_t covered_until() const { return cursor_; }

 private:
  std::vector<core::Extent>& out_;
  std::uint64_t cursor_;  // everything before this is reported
  std::uint64_t end_;
  std::uint32_t max_;
  bool req_one_;
  bool done_ = false;
  bool gap_ = false;
};

}  // namespace nbdd::plugin
