#!/usr/bin/env python3
"""check_sizes.py: report C++ files over a line limit and functions over a body limit.

Usage: scripts/check_sizes.py [--root DIR] [--max-file 600] [--max-func 80] [--quiet]

Scans *.cpp, *.h, *.cc under the source folders (core models losses data inference trainer
toy checks bench cli tests). A file is over when it has more than --max-file lines; a
function is over when its body (opening brace to closing brace) spans more than --max-func
lines. Exits 1 when anything is over, 0 otherwise.

Functions are found with a brace-matching heuristic: comments, string and character literals
are blanked first, then each top-level-ish `{` whose preceding text looks like a function
header (ends in `)`, optionally followed by const/noexcept/override/-> T/initializer list) and
is not a control statement, class, namespace, enum or initializer, opens a body. Lambdas
inside a body count toward the enclosing function. gtest TEST/TEST_F bodies count as
functions.

Exemptions: a comment `// size: data table` on the line of the function header, or on one of
the three lines above it, exempts that function (tables of weights, key maps, glyphs). The
same marker in the first 20 lines of a file exempts the file's line count.
"""
import argparse
import os
import re
import sys

FOLDERS = ["core", "models", "losses", "data", "inference", "trainer", "toy", "checks",
           "bench", "cli", "tests"]
EXTS = (".cpp", ".h", ".cc")
MARKER = "size: data table"
CONTROL = {"if", "for", "while", "switch", "catch", "return", "sizeof", "decltype",
           "alignof", "static_assert", "defined", "else", "do", "try"}


def blank_comments_and_strings(text):
    """Replace comments and string/char literal contents by spaces, keeping newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum()
                                                                     or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # digit separator 1'000
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * max(0, j - i - 2) + (c if j - i >= 2 else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


HEADER_TAIL = re.compile(
    r"\)\s*(const|noexcept(\([^)]*\))?|override|final|mutable|&|&&|\s)*"
    r"(->\s*[\w:<>,\s\*&]+)?\s*$")


def header_name(pre):
    """If `pre` (text before a `{`) ends like a function header, return the name, else None."""
    pre = pre.rstrip()
    # Strip a constructor initializer list: `) : a_(x), b_{y}` -> `)`.
    m = re.search(r"\)\s*:\s*[\w:]+\s*[\(\{][\s\S]*$", pre)
    if m and not re.search(r"\b(case|public|private|protected)\s*$", pre[:m.start() + 1]):
        candidate = pre[:m.start() + 1]
        if HEADER_TAIL.search(candidate):
            pre = candidate
    if not HEADER_TAIL.search(pre):
        return None
    # Find the matching `(` of the final `)`.
    close = pre.rfind(")")
    depth = 0
    k = close
    while k >= 0:
        if pre[k] == ")":
            depth += 1
        elif pre[k] == "(":
            depth -= 1
            if depth == 0:
                break
        k -= 1
    if k < 0:
        return None
    m = re.search(r"([~\w:]+(?:operator\s*\S+?)?)\s*(<[^<>]*>)?\s*$", pre[:k])
    if not m:
        return None
    name = m.group(1)
    last = name.split("::")[-1]
    if last in CONTROL or not last:
        return None
    # A lambda `[..](..) {` or a call `foo(...) {` in an expression is not a header; the
    # caller only asks at nesting depths where definitions live.
    before = pre[:m.start()].rstrip()
    if before.endswith("]") or before.endswith("="):
        return None
    return name


def find_functions(code):
    """Yield (name, start_line, end_line) for function bodies in blanked code."""
    lines_at = []  # offset -> line number via bisect
    pos = 0
    for ln in code.split("\n"):
        lines_at.append(pos)
        pos += len(ln) + 1

    import bisect

    def line_of(off):
        return bisect.bisect_right(lines_at, off)

    stack = []  # entries: "func" or "scope" (namespace/class/extern) or "other"
    results = []
    last_stmt_end = 0  # offset just after the last ; { or } at the current level
    i = 0
    n = len(code)
    while i < n:
        c = code[i]
        if c == "{":
            in_func = any(kind == "func" for kind, _ in stack)
            pre = code[last_stmt_end:i]
            kind = "other"
            if not in_func:
                stripped = pre.strip()
                if re.search(r"\b(namespace|class|struct|union|enum)\b[^()]*$", stripped) or \
                        re.search(r'extern\s+"C"\s*$', stripped) or stripped.startswith("extern"):
                    kind = "scope"
                else:
                    name = header_name(pre)
                    if name is not None:
                        kind = "func"
                        stack.append((kind, (name, line_of(i), i)))
                        last_stmt_end = i + 1
                        i += 1
                        continue
            stack.append((kind, None))
            last_stmt_end = i + 1
        elif c == "}":
            if stack:
                kind, info = stack.pop()
                if kind == "func":
                    name, start, _ = info
                    results.append((name, start, line_of(i)))
            last_stmt_end = i + 1
        elif c == ";":
            last_stmt_end = i + 1
        elif c == "#" and (i == 0 or code[i - 1] == "\n"):
            # Preprocessor line (with continuations): skip it.
            j = i
            while True:
                e = code.find("\n", j)
                if e < 0:
                    e = n
                    break
                if code[e - 1] == "\\":
                    j = e + 1
                    continue
                break
            last_stmt_end = e
            i = e
            continue
        i += 1
    return results


def exempt(raw_lines, line_no):
    lo = max(0, line_no - 4)
    return any(MARKER in raw_lines[k] for k in range(lo, min(line_no, len(raw_lines))))


def scan(root, max_file, max_func):
    files_over, funcs_over = [], []
    for folder in FOLDERS:
        base = os.path.join(root, folder)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d != "fixtures")
            for fn in sorted(filenames):
                if not fn.endswith(EXTS):
                    continue
                path = os.path.join(dirpath, fn)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                raw_lines = text.split("\n")
                num_lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
                if num_lines > max_file and not any(MARKER in l for l in raw_lines[:20]):
                    files_over.append((rel, num_lines))
                for name, start, end in find_functions(blank_comments_and_strings(text)):
                    length = end - start + 1
                    if length > max_func and not exempt(raw_lines, start):
                        funcs_over.append((rel, start, name, length))
    return files_over, funcs_over


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--max-file", type=int, default=600)
    ap.add_argument("--max-func", type=int, default=80)
    ap.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = ap.parse_args()
    files_over, funcs_over = scan(args.root, args.max_file, args.max_func)
    if not args.quiet:
        for rel, num in files_over:
            print(f"file  {rel}: {num} lines (max {args.max_file})")
        for rel, line, name, length in funcs_over:
            print(f"func  {rel}:{line} {name}: {length} lines (max {args.max_func})")
    print(f"check_sizes: {len(files_over)} file(s) over {args.max_file} lines, "
          f"{len(funcs_over)} function(s) over {args.max_func} lines")
    return 1 if files_over or funcs_over else 0


if __name__ == "__main__":
    sys.exit(main())
