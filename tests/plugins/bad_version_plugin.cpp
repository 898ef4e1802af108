// Built as a MODULE by CMakeLists.txt: exports the loader's symbols with an API version
// nbdd does not speak. (Not *_test.cpp, so it stays out of the test executable.)
#include "plugins/plugin_api.hpp"

extern "C" {
__attribute__((visibility("default"))) int nbdd_plugin_api_version = ::nbdd::plugin::api_version + 1000;
__attribute__((visibility("default"))) ::nbdd::plugin::Plugin* nbdd_plugin_create() { return nullptr; }
}
