"""tools/fuzz/make_weight_seeds.py OUT: the weight-file seeds of the fuzz corpora (called by
make_seeds.sh): small safetensors files, torch.save zips, and the data.pkl pickles inside
them (what the torch_pickle harness wraps into a zip itself)."""
import collections
import io
import json
import os
import struct
import sys
import zipfile

import torch

out = sys.argv[1]


def safetensors_bytes(tensors, metadata=None):
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.uint8: "U8", torch.bool: "BOOL"}
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for k, t in tensors.items():
        b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write(sub, name, data):
    with open(os.path.join(out, sub, name), "wb") as f:
        f.write(data)


torch.manual_seed(0)
w = {"blocks.0.self_attn.q.weight": torch.randn(4, 4),
     "blocks.0.norm.weight": torch.ones(4, dtype=torch.bfloat16),
     "head.bias": torch.zeros(2, dtype=torch.float16)}
write("safetensors", "three.safetensors", safetensors_bytes(w, {"format": "pt"}))
write("safetensors", "scalar_empty.safetensors",
      safetensors_bytes({"s": torch.tensor(1.5), "e": torch.zeros(0, 3), "i": torch.arange(3)}))

objects = {
    "state_dict": w,
    "nested": {"generator": collections.OrderedDict((("model." + k, v) for k, v in w.items())),
               "step": 7, "lr": 1e-4, "name": "x", "flags": [True, None, (1, 2.5)]},
    "views": {"a": torch.arange(12.0).reshape(3, 4)[:, 1:3],
              "b": torch.arange(12.0).reshape(3, 4).t()},
}
for name, obj in objects.items():
    buf = io.BytesIO()
    torch.save(obj, buf)
    z = buf.getvalue()
    write("torch_zip", name + ".pt", z)
    with zipfile.ZipFile(io.BytesIO(z)) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")][0]
        write("torch_pickle", name + ".pkl", zf.read(pkl))
