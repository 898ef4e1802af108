// The daemon's entry point, shared by the nbdd executable and nbdd-checked.
#pragma once

namespace nbdd::net {

// Parses the command line, starts the daemon and returns the process exit status.
int run_nbdd(int argc, char** argv);

}  // namespace nbdd::net
