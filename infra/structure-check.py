#!/usr/bin/env python3
"""The structure budget `make ci` holds (issue 17, part B): no non-test Rust source file over
800 lines and no function over 120 lines outside tests.

Test code is exempt: files under a `tests/` directory, files named `tests.rs`, and everything
from a file's first `#[cfg(test)] mod …` on. Strings, chars and line comments are skipped when
braces are counted. Exits 1 and lists what is over budget.
"""
import os
import re
import sys

MAX_FILE_LINES = 800
MAX_FN_LINES = 120
ROOTS = ("crates", "functions", "tests/src")
FN = re.compile(
    r'^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+"[^"]*"\s+)?fn\s+(\w+)'
)


def code_end(lines):
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "#[cfg(test)]" and re.match(r"\s*(pub\s+)?mod\s+\w+", lines[i + 1]):
            return i
    return len(lines)


def strip(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//")[0]


def long_functions(lines, end):
    i = 0
    while i < end:
        m = FN.match(lines[i])
        if m:
            depth, started, j = 0, False, i
            while j < end:
                s = strip(lines[j])
                if not started and ";" in s and "{" not in s:
                    break
                depth += s.count("{") - s.count("}")
                started = started or "{" in s
                if started and depth <= 0:
                    break
                j += 1
            if started and j - i + 1 > MAX_FN_LINES:
                yield i + 1, m.group(7), j - i + 1
        i += 1


def main():
    failures = []
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in ("target", "tests", "node_modules")]
            for name in sorted(filenames):
                if not name.endswith(".rs") or name == "tests.rs":
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    lines = f.read().split("\n")
                end = code_end(lines)
                if end > MAX_FILE_LINES:
                    failures.append(f"{path}: {end} lines of non-test code (budget {MAX_FILE_LINES})")
                for line, fn, n in long_functions(lines, end):
                    failures.append(f"{path}:{line}: fn {fn} is {n} lines (budget {MAX_FN_LINES})")
    for f in failures:
        print(f)
    if failures:
        print(f"structure check: {len(failures)} over budget; split by stage (see DESIGN.md)")
        return 1
    print("structure check: every file and function within budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
