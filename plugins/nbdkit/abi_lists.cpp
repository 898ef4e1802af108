// nbdkit_add_extent and the nbdkit_extents_* family; nbdkit_add_export,
// nbdkit_use_default_export and the nbdkit_exports_* family. Same rules as nbdkit 1.32
// (server/extents.c, server/exports.c): extents ascending and contiguous, clipped to the
// range, adjacent equal types merged; exports checked for length and count.
#include "plugins/nbdkit/abi_lists.hpp"

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <new>

namespace limits = nbdd::plugin::nbdkit_abi;

extern "C" {

NBDKIT_DLL_PUBLIC struct nbdkit_extents* nbdkit_extents_new(uint64_t start, uint64_t end) {
  if (start > INT64_MAX || end > INT64_MAX) {
    nbdkit_error("nbdkit_extents_new: start (%" PRIu64 ") or end (%" PRIu64 ") > INT64_MAX", start, end);
    errno = ERANGE;
    return nullptr;
  }
  if (start > end) {
    nbdkit_error("nbdkit_extents_new: start (%" PRIu64 ") >= end (%" PRIu64 ")", start, end);
    errno = ERANGE;
    return nullptr;
  }
  auto* r = new (std::nothrow) nbdkit_extents;
  if (r == nullptr) {
    errno = ENOMEM;
    nbdkit_error("nbdkit_extents_new: malloc: %m");
    return nullptr;
  }
  r->reset(start, end);
  return r;
}

NBDKIT_DLL_PUBLIC void nbdkit_extents_free(struct nbdkit_extents* exts) { delete exts; }

NBDKIT_DLL_PUBLIC size_t nbdkit_extents_count(const struct nbdkit_extents* exts) { return exts->list.size(); }

NBDKIT_DLL_PUBLIC struct nbdkit_extent nbdkit_get_extent(const struct nbdkit_extents* exts, size_t i) {
  if (i >= exts->list.size()) {  // nbdkit asserts; a plugin bug must not read past the end
    nbdkit_error("nbdkit_get_extent: index %zu out of range", i);
    return nbdkit_extent{0, 0, 0};
  }
  return exts->list[i];
}

NBDKIT_DLL_PUBLIC int nbdkit_add_extent(struct nbdkit_extents* exts, uint64_t offset, uint64_t length,
                                        uint32_t type) {
  if (exts->next >= 0 && static_cast<uint64_t>(exts->next) != offset) {
    nbdkit_error("nbdkit_add_extent: extents must be added in ascending order and must be contiguous");
    errno = ERANGE;
    return -1;
  }
  exts->next = static_cast<int64_t>(offset + length);
  if (length == 0) return 0;
  if (offset >= exts->end || exts->list.size() >= limits::extents_max) return 0;
  if (offset + length > exts->end) length = exts->end - offset;
  if (exts->list.empty()) {
    if (offset + length <= exts->start) return 0;  // wholly before the range
    if (offset > exts->start) {
      nbdkit_error("nbdkit_add_extent: first extent must not be > start (%" PRIu64 ")", exts->start);
      errno = ERANGE;
      return -1;
    }
    length -= exts->start - offset;
    offset = exts->start;
  }
  if (!exts->list.empty() && exts->list.back().type == type) {
    exts->list.back().length += length;
    return 0;
  }
  try {
    exts->list.push_back(nbdkit_extent{offset, length, type});
  } catch (const std::bad_alloc&) {
    errno = ENOMEM;
    nbdkit_error("nbdkit_add_extent: realloc: %m");
    return -1;
  }
  return 0;
}

NBDKIT_DLL_PUBLIC struct nbdkit_exports* nbdkit_exports_new(void) {
  auto* r = new (std::nothrow) nbdkit_exports;
  if (r == nullptr) {
    errno = ENOMEM;
    nbdkit_error("nbdkit_exports_new: malloc: %m");
  }
  return r;
}

NBDKIT_DLL_PUBLIC void nbdkit_exports_free(struct nbdkit_exports* exps) { delete exps; }

NBDKIT_DLL_PUBLIC size_t nbdkit_exports_count(const struct nbdkit_exports* exps) { return exps->list.size(); }

NBDKIT_DLL_PUBLIC const struct nbdkit_export nbdkit_get_export(const struct nbdkit_exports* exps, size_t i) {
  if (i >= exps->list.size()) {
    nbdkit_error("nbdkit_get_export: index %zu out of range", i);
    return nbdkit_export{nullptr, nullptr};
  }
  return nbdkit_export{exps->list[i].name.get(), exps->list[i].description.get()};
}

NBDKIT_DLL_PUBLIC int nbdkit_add_export(struct nbdkit_exports* exps, const char* name, const char* description) {
  if (exps->list.size() >= limits::exports_max) {
    nbdkit_error("nbdkit_add_export: too many exports");
    errno = EINVAL;
    return -1;
  }
  if (name == nullptr || std::strlen(name) > limits::export_string_max ||
      (description != nullptr && std::strlen(description) > limits::export_string_max)) {
    nbdkit_error("nbdkit_add_export: string too long");
    errno = EINVAL;
    return -1;
  }
  nbdkit_exports::Entry entry;
  entry.name.reset(::strdup(name));
  if (description != nullptr) entry.description.reset(::strdup(description));
  if (!entry.name || (description != nullptr && !entry.description)) {
    errno = ENOMEM;
    nbdkit_error("nbdkit_add_export: strdup: %m");
    return -1;
  }
  try {
    exps->list.push_back(std::move(entry));
  } catch (const std::bad_alloc&) {
    errno = ENOMEM;
    nbdkit_error("nbdkit_add_export: realloc: %m");
    return -1;
  }
  return 0;
}

NBDKIT_DLL_PUBLIC int nbdkit_use_default_export(struct nbdkit_exports* exps) {
  exps->use_default = true;
  return 0;
}

}  // extern "C"
