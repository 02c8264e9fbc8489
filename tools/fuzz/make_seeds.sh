#!/usr/bin/env bash
# tools/fuzz/make_seeds.sh: (re)writes the seed corpora fuzz/corpus/<target>/ of the fuzz
# harnesses (fuzz/harness.h): small valid inputs of every kind each parser reads, so that
# libFuzzer starts deep inside the format instead of at its magic bytes. The seeds are
# committed; run this only to change them. Needs the torch environment (scripts/torch_env.sh)
# and the ffmpeg command line.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py="$(bash "$root/scripts/torch_env.sh")/bin/python"
out="$root/fuzz/corpus"
rm -rf "$out"
mkdir -p "$out"/{safetensors,torch_zip,torch_pickle,config_yaml,prompt_file,prompt_schedule}
mkdir -p "$out"/{checkpoint_state,json_configs,lmdb_rows,image,video}

"$py" "$root/tools/fuzz/make_weight_seeds.py" "$out"

# Text: configs, prompt files and schedules, checkpoint state.
cp "$root"/configs/tiny_*.yaml "$root"/configs/toy/teacher.yaml "$out/config_yaml/"
printf 'a red fox running\nA cat, "jumping" over 3 walls\r\n\xef\xbc\xa1 wide\n' \
  > "$out/prompt_file/mixed.txt"
printf '\xef\xbb\xbfone prompt without newline' > "$out/prompt_file/bom.txt"
printf '# a schedule\n0: a red fox\n4: a blue fox running\n\n8: the end\n' \
  > "$out/prompt_schedule/blocks.txt"
printf '0s: sunrise over a lake\n1.5s: noon\n3s: dusk\n' > "$out/prompt_schedule/seconds.txt"
state='{"format":"causvid-checkpoint-v2","step":6,"world_size":2,"data_position":12,"seed":1,"stage":"dmd","files":{"model.pt":{"bytes":1234,"crc32c":305419896},"rng/rank0.bin":{"bytes":16,"crc32c":1}},"models":{"generator":{"shard_world":2,"strategy":"full","optimizer_step":6,"units":[{"name":"blocks.0","numel":10,"shard_numel":5,"params":["blocks.0.w","blocks.0.b"],"opt_step":6}]}}}'
printf '\x00%s' "$state" > "$out/checkpoint_state/trainer_state.json"
printf '\x01{"optimizer_step":3,"modules":{"critic":{"shard_world":1,"units":[{"name":"all","numel":4,"shard_numel":4,"params":["w"]}]}}}' \
  > "$out/checkpoint_state/meta.json"
cfg="$root/tests/fixtures/diffusers_wan_dit_sharded/model/transformer/config.json"
{ cat "$cfg"; printf '\0{"metadata":{},"weight_map":{"w":"a.safetensors"}}'; } \
  > "$out/json_configs/config_and_index.json"

# LMDB rows: "<shape>\n<row bytes>" (float16; 'f' = float32).
printf '3 2 2\n\x00\x3c\x00\x40\x00\x42\x00\x44' > "$out/lmdb_rows/half.bin"
printf 'f2 1 2\n\x00\x00\x80\x3f\x00\x00\x00\x40' > "$out/lmdb_rows/float.bin"

# Images and videos (tiny, several codecs and containers).
ff() { ffmpeg -v error -y "$@"; }
ff -f lavfi -i testsrc=size=16x12 -frames:v 1 "$out/image/test.png"
ff -f lavfi -i testsrc=size=16x12 -frames:v 1 -pix_fmt rgba "$out/image/rgba.png"
ff -f lavfi -i testsrc=size=16x16 -frames:v 1 "$out/image/test.jpg"
ff -f lavfi -i testsrc=size=8x8 -frames:v 1 "$out/image/test.bmp"
ff -f lavfi -i testsrc=size=16x16:rate=8 -frames:v 4 -c:v mpeg4 "$out/video/mpeg4.mp4"
ff -f lavfi -i testsrc=size=16x16:rate=8 -frames:v 4 -c:v mjpeg "$out/video/mjpeg.avi"
ff -f lavfi -i testsrc=size=16x16:rate=8 -frames:v 3 -c:v gif "$out/video/anim.gif"
if ffmpeg -v error -encoders 2>/dev/null | grep -q libx264; then
  ff -f lavfi -i testsrc=size=16x16:rate=8 -frames:v 4 -c:v libx264 -pix_fmt yuv420p \
    "$out/video/h264.mp4"
fi
du -sh "$out"/*
