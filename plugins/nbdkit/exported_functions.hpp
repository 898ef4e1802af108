// Every nbdkit_* function nbdd defines for hosted plugins and filters, by name. The table
// also anchors them: the adaptor references it, so a static link pulls in every one of
// them (an executable exports only what it links), and tests check it against what the
// installed nbdkit plugins and filters import.
#pragma once
#include <span>

namespace nbdd::plugin::nbdkit_abi {

struct ExportedFunction {
  const char* name;
  void (*address)();
};

std::span<const ExportedFunction> exported_functions();
// Called by the loader so this file's object (and with it every nbdkit_* definition) is
// linked into any program that can load an nbdkit plugin.
void force_exported_functions_linked();

}  // namespace nbdd::plugin::nbdkit_abi
