#!/usr/bin/env python3
"""bench/reference_dit.py: times CausVid's own Python WanModel (eager) with the shapes of
`causvid bench dit`, so that the C++ numbers have a baseline measured in the same run.

The reference is imported from a CausVid checkout given on the command line (never copied
into this repository). Wan's modules call flash_attn, which has no CPU build; it is replaced
by torch's scaled_dot_product_attention in the input dtype (what Wan's own `attention()`
falls back to, without its cast to bf16). Needs diffusers (pip install diffusers).

Prints one JSON object per (dtype, pass) on stdout:
  {"dtype": "fp32", "pass": "forward", "seconds": 0.123}
`causvid bench dit --reference CAUSVID_SRC` runs this script and prints the ratios.
"""
import argparse
import json
import sys
import time
import types


def stub_flash_attn(torch):
    def sdpa(q, k, v, q_lens=None, k_lens=None, dropout_p=0., softmax_scale=None,
             q_scale=None, causal=False, window_size=(-1, -1), deterministic=False,
             dtype=None, version=None, fa_version=None):
        # The bench has no padding: every length equals the full sequence (checked).
        for lens, x in ((q_lens, q), (k_lens, k)):
            assert lens is None or bool((lens == x.size(1)).all()), "bench: padding not stubbed"
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        return out.transpose(1, 2).contiguous()
    return sdpa


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--causvid", required=True, help="CausVid checkout (its repository root)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--text-len", type=int, default=512)
    ap.add_argument("--text-dim", type=int, default=4096)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--height", type=int, default=30)
    ap.add_argument("--width", type=int, default=52)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--backward", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()

    import torch
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    import importlib
    import os
    # Load wan_base/modules/{attention,model}.py as a package of their own, so that CausVid's
    # package __init__ files (which import its whole training stack) are not executed.
    mdir = os.path.join(a.causvid, "causvid", "models", "wan", "wan_base", "modules")
    if not os.path.isfile(os.path.join(mdir, "model.py")):
        sys.exit(f"reference_dit: {mdir}/model.py not found: --causvid must be a CausVid checkout")
    pkg = types.ModuleType("causvid_wan_ref")
    pkg.__path__ = [mdir]
    sys.modules["causvid_wan_ref"] = pkg
    att = importlib.import_module("causvid_wan_ref.attention")
    att.flash_attention = stub_flash_attn(torch)
    mod = importlib.import_module("causvid_wan_ref.model")
    mod.flash_attention = att.flash_attention

    dev = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

    def timed(fn):
        fn()
        sync()
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return sorted(ts)[len(ts) // 2]

    for name in a.dtypes.split(","):
        dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[name]
        torch.manual_seed(0)
        m = mod.WanModel(model_type="t2v", patch_size=(1, 2, 2), text_len=a.text_len, in_dim=16,
                         dim=a.dim, ffn_dim=a.ffn, freq_dim=256, text_dim=a.text_dim,
                         out_dim=16, num_heads=a.heads, num_layers=a.layers).to(dev, dt)
        x = [torch.randn(16, a.frames, a.height, a.width, device=dev, dtype=dt)]
        ctx = [torch.randn(a.text_len, a.text_dim, device=dev, dtype=dt)]
        t = torch.full((1,), 500.0, device=dev)
        seq_len = a.frames * (a.height // 2) * (a.width // 2)

        def fwd():
            return m(x, t=t, context=ctx, seq_len=seq_len)[0]

        with torch.no_grad():
            s = timed(fwd)
        print(json.dumps({"dtype": name, "pass": "forward", "seconds": s}), flush=True)
        if a.backward:
            def fb():
                m.zero_grad(set_to_none=True)
                fwd().pow(2).mean().backward()
            s = timed(fb)
            print(json.dumps({"dtype": name, "pass": "fwd+bwd", "seconds": s}), flush=True)


if __name__ == "__main__":
    main()
