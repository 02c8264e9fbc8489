// tests/test_main.cpp: gtest entry point for causvid_tests (all suites share one binary).
#include <gtest/gtest.h>

#include "core/dist.h"
#include "core/runtime.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  causvid::core::init_process();
  causvid::core::prepare_thread_ranks();  // the dist tests run ranks as threads
  return RUN_ALL_TESTS();
}
