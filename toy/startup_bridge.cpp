// toy/startup_bridge.cpp: TODO(layers): temporary. The causvid main (cli/causvid_main.cpp,
// being rewritten in parallel) does not yet call the layers' register_builtins() at
// startup; until it does, this file, compiled straight into the `causvid` executable (not
// into a static library, whose unreferenced objects the linker drops), calls them before
// main. Delete it and its line in CMakeLists.txt once causvid_main.cpp calls, after
// core::init_process():
//   causvid::models::register_builtins();
//   causvid::inference::register_builtins();
//   causvid::toy::register_builtins();
#include "inference/generate.h"
#include "models/wan/presets.h"
#include "toy/text_encoder.h"

namespace {

const bool kRegistered = [] {
  causvid::models::register_builtins();
  causvid::inference::register_builtins();
  causvid::toy::register_builtins();
  return true;
}();

}  // namespace
