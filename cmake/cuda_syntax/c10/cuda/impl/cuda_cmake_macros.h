// Stand-in for the configure-time header that a CUDA build of LibTorch generates; Debian's
// CPU LibTorch ships the c10/cuda headers without it. Used ONLY by the -fsyntax-only check
// of our *_cuda.cpp files (tests: CudaSyntax), never by a real build.
#pragma once
#define C10_CUDA_BUILD_SHARED_LIBS
