// The nbdkit functions only filters call: the 1.32 context API (nbdkit_context_get_backend,
// nbdkit_next_context_open/close, nbdkit_context_set_next) with which a filter manages the
// layer below it by hand (retry reopens it, multi-conn shares it), and the extents helpers
// nbdkit_extents_full/nbdkit_extents_aligned (nbdkit's server/extents.c rules).
#include <cerrno>
#include <cinttypes>

#include "plugins/nbdkit/abi_lists.hpp"
#include "plugins/nbdkit/filter_layers.hpp"

namespace abi = nbdd::plugin::nbdkit_abi;

extern "C" {

NBDKIT_DLL_PUBLIC nbdkit_backend* nbdkit_context_get_backend(nbdkit_context* context) {
  if (context == nullptr || context->backend == nullptr) return nullptr;
  return context->backend->chain->below(context->backend);
}

// `shared` (a context outliving the connection) is accepted but opens an ordinary one:
// nbdd's connections own every context their filters open.
NBDKIT_DLL_PUBLIC nbdkit_next* nbdkit_next_context_open(nbdkit_backend* backend, int readonly,
                                                        const char* exportname, int shared) {
  (void)shared;
  if (backend == nullptr) {
    nbdkit_error("nbdkit_next_context_open: no backend");
    errno = EINVAL;
    return nullptr;
  }
  return abi::as_next(abi::layer_open(backend, readonly, exportname));
}

NBDKIT_DLL_PUBLIC void nbdkit_next_context_close(nbdkit_next* next) {
  if (next != nullptr) abi::layer_close(abi::as_context(next));
}

NBDKIT_DLL_PUBLIC nbdkit_next* nbdkit_context_set_next(nbdkit_context* context, nbdkit_next* next) {
  if (context == nullptr) return nullptr;
  nbdkit_context* old = context->c_next;
  context->c_next = abi::as_context(next);
  return abi::as_next(old);
}

// The whole range's extents, asking the layer below as many times as it takes.
NBDKIT_DLL_PUBLIC struct nbdkit_extents* nbdkit_extents_full(nbdkit_next* next, uint32_t count, uint64_t offset,
                                                             uint32_t flags, int* err) {
  flags &= ~NBDKIT_FLAG_REQ_ONE;
  nbdkit_extents* all = nbdkit_extents_new(offset, offset + count);
  if (all == nullptr) {
    *err = errno;
    return nullptr;
  }
  while (count > 0) {
    nbdkit_extents* part = nbdkit_extents_new(offset, offset + count);
    if (part == nullptr || next->extents(next, count, offset, flags, part, err) == -1) {
      if (part == nullptr) *err = errno;
      nbdkit_extents_free(part);
      nbdkit_extents_free(all);
      return nullptr;
    }
    const uint64_t before = offset;
    for (const nbdkit_extent& e : part->list) {
      if (nbdkit_add_extent(all, e.offset, e.length, e.type) == -1 || e.length > count) {
        *err = errno ? errno : EIO;
        nbdkit_extents_free(part);
        nbdkit_extents_free(all);
        return nullptr;
      }
      offset += e.length;
      count -= static_cast<uint32_t>(e.length);
    }
    nbdkit_extents_free(part);
    if (offset == before) {  // nbdkit asserts progress; a layer that makes none is broken
      nbdkit_error("nbdkit_extents_full: no progress at offset %" PRIu64, offset);
      *err = EIO;
      nbdkit_extents_free(all);
      return nullptr;
    }
  }
  return all;
}

// Extents whose lengths are multiples of `align`: the first unaligned one is cut down to a
// multiple, or, when shorter than `align`, merged with what follows (types intersected) up
// to exactly `align`.
NBDKIT_DLL_PUBLIC int nbdkit_extents_aligned(nbdkit_next* next, uint32_t count, uint64_t offset, uint32_t flags,
                                             uint32_t align, struct nbdkit_extents* exts, int* err) {
  if (align == 0 || ((count | offset) % align) != 0) {
    nbdkit_error("nbdkit_extents_aligned: unaligned request");
    *err = EINVAL;
    return -1;
  }
  if (next->extents(next, count, offset, flags, exts, err) == -1) return -1;
  for (std::size_t i = 0; i < exts->list.size(); ++i) {
    nbdkit_extent& e = exts->list[i];
    if (e.length % align == 0) continue;
    if (e.offset + e.length > offset + align) {  // past the first block: truncate there
      e.length -= e.length % align;
      exts->list.resize(i + (e.length != 0 ? 1 : 0));
      exts->next = static_cast<int64_t>(exts->list.empty() ? e.offset : e.offset + e.length);
      return 0;
    }
    // Only the first extent can be shorter than one block here: coalesce up to one block.
    nbdkit_extent first = exts->list[0];
    std::size_t used = 1;
    while (first.length < align) {
      if (used < exts->list.size()) {
        first.length += exts->list[used].length;
        first.type &= exts->list[used].type;
        ++used;
        continue;
      }
      nbdkit_extents* more = nbdkit_extents_new(first.offset + first.length, offset + align);
      if (more == nullptr) {
        *err = errno;
        return -1;
      }
      const int r = next->extents(next, static_cast<uint32_t>(align - first.length), first.offset + first.length,
                                  flags & ~NBDKIT_FLAG_REQ_ONE, more, err);
      if (r == -1 || more->list.empty()) {
        if (r != -1) *err = EIO;
        nbdkit_extents_free(more);
        return -1;
      }
      for (const nbdkit_extent& m : more->list) {
        first.length += m.length;
        first.type &= m.type;
      }
      nbdkit_extents_free(more);
    }
    first.length = align;
    exts->list.assign(1, first);
    exts->next = static_cast<int64_t>(first.offset + first.length);
    return 0;
  }
  return 0;
}

}  // extern "C"
