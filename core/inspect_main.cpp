// core/inspect_main.cpp: placeholder, replaced by the real subcommand.
#include <c10/util/Exception.h>

#include "cli/commands.h"

namespace causvid::cli {

int inspect_main(int argc, char** argv) { TORCH_CHECK(false, "inspect_main: not implemented yet"); }

}  // namespace causvid::cli
