// tests/test_main.cpp: gtest entry point for causvid_tests (all suites share one binary).
#include <gtest/gtest.h>

#include "core/dist.h"
#include "core/runtime.h"
#include "inference/generate.h"
#include "models/wan/presets.h"
#include "toy/text_encoder.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  causvid::core::init_process();
  // The named parts of the higher layers (model-size config check, "hash" and "toy" text
  // encoders), registered explicitly as the causvid main does.
  causvid::models::register_builtins();
  causvid::inference::register_builtins();
  causvid::toy::register_builtins();
  causvid::core::prepare_thread_ranks();  // the dist tests run ranks as threads
  return RUN_ALL_TESTS();
}
