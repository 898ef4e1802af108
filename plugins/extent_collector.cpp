#include "plugins/extent_collector.hpp"

#include <algorithm>
#include <limits>

namespace nbdd::plugin {

bool ExtentCollector::add(std::uint64_t offset, std::uint64_t length, std::uint32_t type) {
  if (done_) return false;
  if (length == 0) return true;
  const std::uint64_t extent_end =
      length > std::numeric_limits<std::uint64_t>::max() - offset ? std::numeric_limits<std::uint64_t>::max()
                                                                  : offset + length;
  if (extent_end <= cursor_) return true;  // before the range still to cover: ignore
  if (offset > cursor_) {
    gap_ = done_ = true;
    return false;
  }
  const std::uint64_t stop = std::min(extent_end, end_);
  type &= extent_hole | extent_zero;
  if (!out_.empty() && out_.back().type == type && out_.back().offset + out_.back().length == cursor_) {
    out_.back().length += stop - cursor_;
  } else {
    out_.push_back(core::Extent{cursor_, stop - cursor_, type});
  }
  cursor_ = stop;
  const bool full = max_ != 0 && out_.size() >= max_;
  if (cursor_ >= end_ || req_one_ || full) done_ = true;
  return !done_;
}

}  // namespace nbdd::plugin
