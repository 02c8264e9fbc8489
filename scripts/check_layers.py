#!/usr/bin/env python3
"""scripts/check_layers.py: the layer rule of STYLE.md section 1, enforced on #include lines.

Layers, bottom to top: core, models, losses, data, inference, trainer, toy, checks, bench,
cli. A file may include headers of its own layer and of lower ones. A file's layer is its
top-level folder, except that every *_main.cpp (a subcommand) is cli wherever it lies.
tests/ may include anything. Only quoted includes naming a layer folder
(#include "data/lmdb.h") are checked.

  check_layers.py [ROOT]    exit 1, listing file:line and the include, on a violation
  check_layers.py --self-test   plants an upward include in a temporary tree, expects failure
"""
import os
import re
import sys
import tempfile

LAYERS = ["core", "models", "losses", "data", "inference", "trainer", "toy", "checks",
          "bench", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}
SUFFIXES = (".h", ".hpp", ".cpp", ".cc")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"/]+)/[^"]*"')


def layer_of(relpath):
    """The layer of a file (relative path with '/'), or None when not in a layer folder."""
    top = relpath.split("/", 1)[0]
    if top not in RANK:
        return None
    return "cli" if relpath.endswith("_main.cpp") else top


def violations(root):
    out = []
    for top in LAYERS:
        base = os.path.join(root, top)
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith(SUFFIXES):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                layer = layer_of(rel)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m and m.group(1) in RANK and RANK[m.group(1)] > RANK[layer]:
                            out.append("%s:%d: layer '%s' includes '%s' of the higher layer "
                                       "'%s' (order: %s)" % (rel, lineno, layer, line.strip(),
                                                            m.group(1), " < ".join(LAYERS)))
    return out


def self_test():
    with tempfile.TemporaryDirectory() as root:
        def write(rel, text):
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        write("core/a.h", '#include "core/b.h"\n')
        write("data/ok.cpp", '#include "core/a.h"\n#include "models/m.h"\n')
        write("data/tool_main.cpp", '#include "cli/commands.h"\n')  # mains are cli
        write("tests/t.cpp", '#include "cli/commands.h"\n')  # tests are not checked
        assert violations(root) == [], violations(root)
        write("data/bad.cpp", '#include "core/a.h"\n  #include "toy/world.h"\n')
        v = violations(root)
        assert len(v) == 1 and v[0].startswith("data/bad.cpp:2:") and "toy/world.h" in v[0], v
        write("checks/bad2.h", '#include "cli/commands.h"\n')
        assert len(violations(root)) == 2
    print("check_layers self-test: ok")
    return 0


def main(argv):
    if len(argv) > 1 and argv[1] == "--self-test":
        return self_test()
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    v = violations(root)
    for line in v:
        print(line, file=sys.stderr)
    if v:
        print("check_layers: %d upward include(s); move the code up or the include down"
              % len(v), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
