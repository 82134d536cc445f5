// cilium-dbg: see agent/dbg/dbg.h for the commands.
#include <iostream>
#include <string>
#include <vector>

#include "agent/dbg/dbg.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return cilium::dbg::runDbg(args, std::cout, std::cerr, cilium::dbg::DbgEnv::system());
}
