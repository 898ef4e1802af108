#include "plugins/registry.hpp"

#include <array>

#include "plugins/file/file_plugin.hpp"
#include "plugins/memory/memory_plugin.hpp"
#include "plugins/null/null_plugin.hpp"
#include "plugins/pattern/pattern_plugin.hpp"
#include "plugins/sh/sh_plugin.hpp"

namespace nbdd::plugin {
namespace {

constexpr std::array<std::string_view, 5> names = {"file", "memory", "null", "pattern", "sh"};

}  // namespace

std::unique_ptr<Plugin> make_builtin_plugin(std::string_view name) {
  if (name == "memory") return std::make_unique<memory::MemoryPlugin>();
  if (name == "file") return std::make_unique<file::FilePlugin>();
  if (name == "null") return std::make_unique<null::NullPlugin>();
  if (name == "pattern") return std::make_unique<pattern::PatternPlugin>();
  if (name == "sh") return std::make_unique<sh::ShPlugin>();
  return nullptr;
}

std::span<const std::string_view> builtin_plugin_names() { return names; }

}  // namespace nbdd::plugin
