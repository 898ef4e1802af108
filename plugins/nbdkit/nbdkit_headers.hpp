// nbdkit's own ABI definitions, from Debian's nbdkit-plugin-dev (never retyped here): the
// plugin struct at API version 2, the filter struct, and every nbdkit_* declaration, so the
// compiler checks each definition in this directory against nbdkit's prototype.
#pragma once
#ifndef NBDKIT_API_VERSION
#define NBDKIT_API_VERSION 2
#endif
#include <nbdkit-filter.h>
#include <nbdkit-plugin.h>

// nbdkit_disconnect(3) came after nbdkit 1.32; nbdd provides it for plugins that declare it.
extern "C" NBDKIT_DLL_PUBLIC void nbdkit_disconnect(int force);
