// A fresh directory under $TMPDIR (or /tmp) for one test, removed with everything in it.
#pragma once
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace nbdd::test {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/nbdd-test-XXXXXX";
    if (::mkdtemp(pattern.data())) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // Writes `text` to `name`; executable when asked (for sh scripts).
  std::string write(const std::string& name, const std::string& text, bool executable = false) const {
    const std::string p = file(name);
    std::ofstream(p, std::ios::binary) << text;
    if (executable) ::chmod(p.c_str(), 0700);
    return p;
  }

 private:
  std::string path_;
};

}  // namespace nbdd::test
