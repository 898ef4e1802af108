#include "plugins/file/file_plugin.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace nbdd::plugin::file {
namespace {

struct FileHandle final : Handle {
  std::string path;  // for messages
  int fd = -1;
  bool readonly = false;
  bool block_device = false;
  // Cleared on the first EOPNOTSUPP so unsupported fallocate modes are tried once.
  std::atomic<bool> can_punch{true};
  std::atomic<bool> can_zero_range{true};
  std::atomic<bool> can_seek_data{true};
  // cache=none: the last writes, oldest first, still being written back (nbdkit's window:
  // start write-back at once, wait for it and drop the pages 8 writes later, so a stream of
  // writes neither fills the page cache nor waits for each write to reach the disk).
  struct WriteWindow {
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
  };
  std::mutex window_mutex;
  std::array<WriteWindow, 8> windows{};
  ~FileHandle() override {
    if (fd >= 0) ::close(fd);
  }
};

FileHandle& as_file(Handle& h) { return static_cast<FileHandle&>(h); }

// cache=none after a write (nbdkit-file-plugin's evict_writes, per handle here).
void evict_written(FileHandle& fh, std::uint64_t offset, std::uint64_t length) {
  const std::lock_guard lock(fh.window_mutex);
  const FileHandle::WriteWindow oldest = fh.windows.front();
  if (oldest.length > 0) {
    ::sync_file_range(fh.fd, static_cast<off_t>(oldest.offset), static_cast<off_t>(oldest.length),
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    ::posix_fadvise(fh.fd, static_cast<off_t>(oldest.offset), static_cast<off_t>(oldest.length), POSIX_FADV_DONTNEED);
  }
  std::move(fh.windows.begin() + 1, fh.windows.end(), fh.windows.begin());
  ::sync_file_range(fh.fd, static_cast<off_t>(offset), static_cast<off_t>(length), SYNC_FILE_RANGE_WRITE);
  fh.windows.back() = {offset, length};
}

// nbdkit-file-plugin's dir= rule: a name is one directory entry, never a path.
bool is_plain_file_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

bool servable(const struct stat& st) { return S_ISREG(st.st_mode) || S_ISBLK(st.st_mode); }

bool unsupported(int err) { return err == EOPNOTSUPP || err == ENOTSUP || err == ENOSYS || err == EINVAL; }

// fallocate with one mode, remembering "unsupported" in `supported`. 0, ENOTSUP or errno.
int try_fallocate(FileHandle& fh, std::atomic<bool>& supported, int mode, std::uint64_t count, std::uint64_t offset) {
  if (!supported.load(std::memory_order_relaxed)) return ENOTSUP;
  if (::fallocate(fh.fd, mode, static_cast<off_t>(offset), static_cast<off_t>(count)) == 0) return 0;
  const int err = errno;
  if (unsupported(err)) {
    supported.store(false, std::memory_order_relaxed);
    return ENOTSUP;
  }
  return err;
}

}  // namespace

int FilePlugin::fail(const std::string& path, const char* what, int err) {
  host().error(std::string(what) + ": " + path + ": " + std::strerror(err));
  return err;
}

int FilePlugin::fail(Handle& h, const char* what, int err) { return fail(as_file(h).path, what, err); }

int FilePlugin::config(std::string_view key, std::string_view value) {
  if (key == "file") {
    // Absolute now (nbdkit's file plugin does the same with nbdkit_realpath): a background
    // nbdd changes to / before the first client opens the file.
    char* real = ::realpath(std::string(value).c_str(), nullptr);
    if (real == nullptr) return fail(std::string(value), "realpath", errno);
    path_ = real;
    std::free(real);
    return 0;
  }
  if (key == "dir" || key == "directory") {
    // Absolute now, so a later change of working directory cannot move the exports.
    char* real = ::realpath(std::string(value).c_str(), nullptr);
    if (real == nullptr) return fail(std::string(value), "realpath", errno);
    dir_ = real;
    std::free(real);
    return 0;
  }
  if (key == "cache") {  // nbdkit-file-plugin's cache=default|none
    if (value == "default") cache_none_ = false;
    else if (value == "none") cache_none_ = true;
    else {
      host().error("unknown cache mode: " + std::string(value) + " (default or none)");
      return EINVAL;
    }
    return 0;
  }
  if (key == "fadvise") {  // nbdkit-file-plugin's fadvise=normal|random|sequential, on each open
    if (value == "normal") fadvise_ = POSIX_FADV_NORMAL;
    else if (value == "random") fadvise_ = POSIX_FADV_RANDOM;
    else if (value == "sequential") fadvise_ = POSIX_FADV_SEQUENTIAL;
    else {
      host().error("unknown fadvise mode: " + std::string(value) + " (normal, random or sequential)");
      return EINVAL;
    }
    return 0;
  }
  host().error("unknown parameter '" + std::string(key) +
               "' (file takes file=PATH or dir=DIR, and cache=default|none, fadvise=normal|random|sequential)");
  return EINVAL;
}

int FilePlugin::config_complete() {
  if (path_.empty() && dir_.empty()) {
    host().error("file=PATH or dir=DIR is required (e.g. file disk.img)");
    return EINVAL;
  }
  if (!path_.empty() && !dir_.empty()) {
    host().error("file= and dir= cannot be used at the same time");
    return EINVAL;
  }
  struct stat st;
  if (!dir_.empty()) {
    if (::stat(dir_.c_str(), &st) != 0) return fail(dir_, "stat", errno);
    if (!S_ISDIR(st.st_mode)) {
      host().error(dir_ + ": not a directory");
      return EINVAL;
    }
    return 0;
  }
  if (::stat(path_.c_str(), &st) != 0) return fail(path_, "stat", errno);
  if (S_ISDIR(st.st_mode)) {
    host().error(path_ + ": is a directory (use dir= to serve the files in it)");
    return EINVAL;
  }
  if (!servable(st)) {
    host().error(path_ + ": not a regular file or block device");
    return EINVAL;
  }
  return 0;
}

// dir=: the directory as it is now (a file added after start-up is listed), regular files
// and block devices only, symbolic links followed. file=: the default export ("").
int FilePlugin::list_exports(bool, ExportList& out) {
  if (dir_.empty()) {
    out.use_default();
    return 0;
  }
  DIR* dir = ::opendir(dir_.c_str());
  if (dir == nullptr) return fail(dir_, "opendir", errno);
  const int dir_fd = ::dirfd(dir);
  int result = 0;
  for (;;) {
    errno = 0;
    const struct dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) result = fail(dir_, "readdir", errno);
      break;
    }
    bool listed = entry->d_type == DT_REG || entry->d_type == DT_BLK;
    if (entry->d_type == DT_LNK || entry->d_type == DT_UNKNOWN) {
      struct stat st;
      listed = ::fstatat(dir_fd, entry->d_name, &st, 0) == 0 && servable(st);
    }
    if (listed && !out.add(entry->d_name)) break;  // nbdd's list is full
  }
  ::closedir(dir);
  return result;
}

// dir=: no file is called "", so a client naming no export is refused (nbdkit refuses it
// by failing the open; saying so here gives the clearer "not permitted" message).
std::optional<std::string> FilePlugin::default_export(bool) {
  if (dir_.empty()) return std::string();
  return std::nullopt;
}

int FilePlugin::open(bool readonly, std::string_view export_name, std::unique_ptr<Handle>& out) {
  auto fh = std::make_unique<FileHandle>();
  int dir_fd = AT_FDCWD;
  if (dir_.empty()) {
    fh->path = path_;  // file=: every export name is the file
  } else {
    if (!is_plain_file_name(export_name)) {
      host().error("export name '" + std::string(export_name) + "': not a file name in " + dir_);
      return EINVAL;
    }
    fh->path = dir_ + "/" + std::string(export_name);
    dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return fail(dir_, "open", errno);
  }
  // Relative to DIR's descriptor: a name cannot climb out of it. Checked before opening so
  // that a FIFO or a directory is refused instead of opened (a FIFO open could block).
  const std::string name = dir_.empty() ? path_ : std::string(export_name);
  struct stat st;
  int r = 0;
  if (::fstatat(dir_fd, name.c_str(), &st, 0) != 0) {
    r = fail(fh->path, "stat", errno);
  } else if (!servable(st)) {
    host().error(fh->path + ": not a regular file or block device");
    r = EINVAL;
  } else {
    if (!readonly) fh->fd = ::openat(dir_fd, name.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
    // Falling back to read-only mirrors nbdkit: a file we may not write is served read-only.
    if (fh->fd < 0 && (readonly || errno == EACCES || errno == EROFS || errno == EPERM)) {
      fh->fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
      fh->readonly = true;
    }
    if (fh->fd < 0) r = fail(fh->path, "open", errno);
  }
  if (dir_fd != AT_FDCWD) ::close(dir_fd);
  if (r != 0) return r;
  if (::fstat(fh->fd, &st) != 0) return fail(fh->path, "fstat", errno);
  if (!servable(st)) {  // replaced between the check and the open
    host().error(fh->path + ": not a regular file or block device");
    return EINVAL;
  }
  fh->block_device = S_ISBLK(st.st_mode);
  // A hint: a kernel that does not take it changes nothing (nbdkit only logs it too).
  if (const int err = ::posix_fadvise(fh->fd, 0, 0, fadvise_); err != 0)
    host().debug("posix_fadvise: " + fh->path + ": " + std::strerror(err) + " (ignored)");
  out = std::move(fh);
  return 0;
}

void FilePlugin::close(Handle&) {}  // the descriptor closes with the handle

int FilePlugin::get_size(Handle& h, std::uint64_t& size) {
  FileHandle& fh = as_file(h);
  if (fh.block_device) {
    std::uint64_t bytes = 0;
    if (::ioctl(fh.fd, BLKGETSIZE64, &bytes) != 0) return fail(h, "BLKGETSIZE64", errno);
    size = bytes;
    return 0;
  }
  struct stat st;
  if (::fstat(fh.fd, &st) != 0) return fail(h, "fstat", errno);
  size = static_cast<std::uint64_t>(st.st_size);
  return 0;
}

int FilePlugin::can_write(Handle& h) { return as_file(h).readonly ? 0 : 1; }

// SEEK_DATA/SEEK_HOLE mean nothing on block devices; there every byte is data.
int FilePlugin::can_extents(Handle& h) { return as_file(h).block_device ? 0 : 1; }

int FilePlugin::pread(Handle& h, std::span<std::byte> buf, std::uint64_t offset, std::uint32_t) {
  FileHandle& fh = as_file(h);
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = ::pread(fh.fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(h, "pread", errno);
    if (n == 0) {  // the file shrank under us: the export size is a promise we cannot keep
      host().error("pread: " + fh.path + ": unexpected end of file");
      return EIO;
    }
    done += static_cast<std::size_t>(n);
  }
  // cache=none: drop the pages just read from the page cache.
  if (cache_none_)
    ::posix_fadvise(fh.fd, static_cast<off_t>(offset), static_cast<off_t>(buf.size()), POSIX_FADV_DONTNEED);
  return 0;
}

int FilePlugin::pwrite(Handle& h, std::span<const std::byte> buf, std::uint64_t offset, std::uint32_t flags) {
  FileHandle& fh = as_file(h);
  std::size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = ::pwrite(fh.fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(h, "pwrite", errno);
    done += static_cast<std::size_t>(n);
  }
  if (cache_none_) evict_written(fh, offset, buf.size());
  return (flags & flag::fua) ? flush(h, 0) : 0;
}

int FilePlugin::flush(Handle& h, std::uint32_t) {
  if (::fdatasync(as_file(h).fd) != 0) return fail(h, "fdatasync", errno);
  return 0;
}

// Trim is advisory: where holes cannot be punched, doing nothing is a valid trim.
int FilePlugin::trim(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
  FileHandle& fh = as_file(h);
  const int r = try_fallocate(fh, fh.can_punch, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, offset);
  if (r != 0 && r != ENOTSUP) return fail(h, "fallocate(PUNCH_HOLE)", r);
  return (flags & flag::fua) ? flush(h, 0) : 0;
}

// Fast paths first: zero range keeps allocation (NBD_CMD_FLAG_NO_HOLE semantics), punching
// a hole is allowed only with may_trim. ENOTSUP lets the host write zeroes instead, or
// fail a FAST_ZERO request.
int FilePlugin::zero(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t flags) {
  FileHandle& fh = as_file(h);
  int r = ENOTSUP;
  if (flags & flag::may_trim)
    r = try_fallocate(fh, fh.can_punch, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, count, offset);
  if (r == ENOTSUP)
    r = try_fallocate(fh, fh.can_zero_range, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, count, offset);
  if (r == ENOTSUP) return ENOTSUP;
  if (r != 0) return fail(h, "fallocate(zero)", r);
  return (flags & flag::fua) ? flush(h, 0) : 0;
}

int FilePlugin::extents(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t, ExtentSink& sink) {
  FileHandle& fh = as_file(h);
  const std::uint64_t end = offset + count;
  std::uint64_t pos = offset;
  constexpr std::uint32_t hole = extent_hole | extent_zero;
  while (pos < end) {
    if (!fh.can_seek_data.load(std::memory_order_relaxed)) return sink.add(pos, end - pos, 0), 0;
    off_t data = ::lseek(fh.fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
      data = static_cast<off_t>(end);  // no data after pos: the rest is a hole
    } else if (data < 0) {
      if (errno == EINVAL || errno == EOPNOTSUPP) {
        fh.can_seek_data.store(false, std::memory_order_relaxed);
        continue;
      }
      return fail(h, "lseek(SEEK_DATA)", errno);
    }
    const std::uint64_t data_at = std::min<std::uint64_t>(static_cast<std::uint64_t>(data), end);
    if (data_at > pos) {
      if (!sink.add(pos, data_at - pos, hole)) return 0;
      pos = data_at;
      continue;
    }
    const off_t hole_at = ::lseek(fh.fd, static_cast<off_t>(pos), SEEK_HOLE);
    if (hole_at < 0) return fail(h, "lseek(SEEK_HOLE)", errno);
    const std::uint64_t data_end = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole_at), end);
    if (data_end <= pos) {  // raced with a concurrent write or truncate: call it data
      return sink.add(pos, end - pos, 0), 0;
    }
    if (!sink.add(pos, data_end - pos, 0)) return 0;
    pos = data_end;
  }
  return 0;
}

int FilePlugin::cache(Handle& h, std::uint64_t count, std::uint64_t offset, std::uint32_t) {
  const int r = ::posix_fadvise(as_file(h).fd, static_cast<off_t>(offset), static_cast<off_t>(count), POSIX_FADV_WILLNEED);
  return r == 0 ? 0 : fail(h, "posix_fadvise", r);
}

}  // namespace nbdd::plugin::file
