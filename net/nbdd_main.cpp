// The nbdd executable: everything is in run_nbdd() (net/run_nbdd.cpp).
#include "net/run_nbdd.hpp"

int main(int argc, char** argv) { return nbdd::net::run_nbdd(argc, argv); }
