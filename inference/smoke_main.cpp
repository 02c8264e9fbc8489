// inference/smoke_main.cpp: placeholder, replaced by the real subcommand.
#include <c10/util/Exception.h>

#include "cli/commands.h"

namespace causvid::cli {

int smoke_main(int argc, char** argv) { TORCH_CHECK(false, "smoke_main: not implemented yet"); }

}  // namespace causvid::cli
