# fuzz/fuzz.cmake: the fuzz build (cmake -DCAUSVID_FUZZ=ON with clang; the main build makes
# one in <build>/fuzz when clang and libFuzzer are there, docs/fuzzing.md). It compiles only
# the parsers of outside bytes and what they call, with -fsanitize=fuzzer-no-link,address,
# undefined, into one static library, and links `causvid_fuzz` (libFuzzer's main).
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "CAUSVID_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
endif()
set(_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
# UBSan's vptr check needs the RTTI of LibTorch's classes across the shared-library boundary,
# which the wheel's hidden typeinfo breaks (false reports inside c10::intrusive_ptr).
list(APPEND _san -fno-sanitize=vptr)
file(GLOB _core CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/core/*.cpp)
list(FILTER _core EXCLUDE REGEX ".*/core/dist[^/]*\\.cpp$")
set(_parsers ${_core}
  models/common/key_table.cpp models/wan/wan_layouts.cpp models/wan/wan_config.cpp
  models/wan/presets.cpp
  models/t5/tokenizer.cpp
  data/prompt_file.cpp data/array_lmdb.cpp data/array_lmdb_walk.cpp data/lmdb.cpp
  data/lmdb_verify.cpp data/image_io.cpp data/video_io.cpp data/video_decode.cpp
  data/video_writer.cpp
  inference/prompt_schedule.cpp
  trainer/checkpoint_state.cpp)
file(GLOB _harnesses CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/*.cpp)
list(FILTER _harnesses EXCLUDE REGEX ".*/fuzz_main\\.cpp$")
add_library(causvid_fuzz_parsers STATIC ${_parsers} ${_harnesses})
target_include_directories(causvid_fuzz_parsers PUBLIC ${CMAKE_SOURCE_DIR} ${TORCH_INCLUDE_DIRS})
target_compile_definitions(causvid_fuzz_parsers PUBLIC CAUSVID_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
  CAUSVID_FUZZING=1)
target_compile_options(causvid_fuzz_parsers PUBLIC ${TORCH_CXX_FLAGS} ${_san}
  -fsanitize=fuzzer-no-link -O1 -g -Wno-unused-parameter -Wno-sign-compare)
target_link_libraries(causvid_fuzz_parsers PUBLIC ${TORCH_LIBRARIES} PkgConfig::LIBAV yaml-cpp
  nlohmann_json::nlohmann_json absl::str_format absl::strings ${LMDB_LIBRARY} pthread dl)
target_precompile_headers(causvid_fuzz_parsers PUBLIC <torch/torch.h> <string> <vector> <map>)
# The tokenizer's sentencepiece shim is never loaded by the harnesses (no .model parsing here).
set_source_files_properties(${CMAKE_SOURCE_DIR}/models/t5/tokenizer.cpp PROPERTIES
  COMPILE_DEFINITIONS "CAUSVID_SPM_SHIM=\"\"")
add_executable(causvid_fuzz fuzz/fuzz_main.cpp)
target_link_libraries(causvid_fuzz PRIVATE ${CAUSVID_STDCXX_FIRST} causvid_fuzz_parsers)
target_link_options(causvid_fuzz PRIVATE ${_san} -fsanitize=fuzzer)
target_precompile_headers(causvid_fuzz REUSE_FROM causvid_fuzz_parsers)
