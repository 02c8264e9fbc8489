// data/image_io.h: still images through libav*: PNG write (libavcodec's png encoder) for
// previews and contact sheets, and PNG/JPEG/WebP/... read into [3,H,W] (the first image
// input of image-to-video, e.g. CausVid's minimal_inference/i2v_autoregressive_inference.py
// which loads the conditioning image with PIL and normalizes it to [-1,1]).
// Grid layout follows torchvision.utils.make_grid (padding around every cell).
#pragma once

#include <torch/torch.h>

#include <string>

namespace causvid::data {

// Writes [3,H,W] (or [1,3,H,W]) uint8, or float in [-1,1], as an 8-bit RGB PNG, atomically
// (temp + rename). Errors name the file.
void write_png(const std::string& path, const torch::Tensor& image);
// Encodes to PNG bytes in memory.
std::string encode_png(const torch::Tensor& image);

// Decodes any still image libav reads (PNG, JPEG, BMP, WebP, TIFF, ...) -> [3,H,W] uint8.
// Alpha is dropped, gray is expanded to RGB. Errors name the file.
torch::Tensor read_image(const std::string& path);
// [3,H,W] float32 in [-1,1].
torch::Tensor read_image_float(const std::string& path);

struct GridOptions {
  int num_cols = 0;       // 0: ceil(sqrt(F))
  int padding = 2;        // pixels around and between cells
  uint8_t pad_value = 0;  // gray level of the padding
};
// [F,3,H,W] (uint8 or float [-1,1]) -> [3, rows*(H+p)+p, cols*(W+p)+p] uint8; unused cells
// are filled with pad_value.
torch::Tensor make_grid(const torch::Tensor& frames, const GridOptions& opts = {});
// A grid of frames as one PNG. With max_frames > 0, frames are sampled evenly in time
// (first and last included) down to max_frames cells.
void write_contact_sheet(const std::string& path, const torch::Tensor& frames,
                         const GridOptions& opts = {}, int max_frames = 0);

}  // namespace causvid::data
