// tests/test_main.cpp: gtest entry point for causvid_tests (all suites share one binary).
#include <gtest/gtest.h>

#include "core/runtime.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  causvid::core::init_process();
  return RUN_ALL_TESTS();
}
