#!/usr/bin/env python3
"""Attribute a firmware image's code bytes to the crates their source lines come from.

    python3 scripts/size-by-crate.py IMAGE.elf [ROOT]

With LTO nearly everything is inlined into a few functions (smoltcp's `Interface::poll` ends up
inside the firmware's `main`), so symbol sizes say little about which crate costs what. The DWARF
line table still maps every instruction to the source line it came from, inlined or not: summing
the address ranges per source file, and the files per crate, tells what the code is made of.
Needs `llvm-dwarfdump` (Debian's `llvm` package) and an image built with debug info. Only code
(`.text`) is attributed; constant data (`.rodata`) has no line information.
"""

import collections
import re
import subprocess
import sys


def dwarfdump(elf, *args):
    return subprocess.run(
        ["llvm-dwarfdump", *args, elf], check=True, capture_output=True, text=True
    ).stdout


def comp_dirs(elf):
    """Each compile unit's line table offset -> its compilation directory."""
    dirs = {}
    stmt = comp = None
    for line in dwarfdump(elf, "--debug-info").splitlines():
        if "DW_TAG_compile_unit" in line:
            if stmt is not None:
                dirs[stmt] = comp
            stmt = comp = None
        elif m := re.search(r"DW_AT_stmt_list\s+\((0x[0-9a-f]+)\)", line):
            stmt = int(m.group(1), 16)
        elif m := re.search(r'DW_AT_comp_dir\s+\("(.*)"\)', line):
            comp = m.group(1)
    if stmt is not None:
        dirs[stmt] = comp
    return dirs


def crate_of(path, root):
    if m := re.search(r"/registry/src/[^/]+/([A-Za-z0-9_-]+?)-\d+\.\d+\.\d+[^/]*/", path):
        return m.group(1).replace("_", "-")
    if m := re.search(r"/library/([a-z_-]+)/", path):
        return m.group(1)  # core, compiler-builtins, ...
    if "/firmware/" in path:
        return "firmware (firmware/)"
    if root and path.startswith(root.rstrip("/") + "/src/"):
        return "halfclose"
    return "other: " + path


def rows(elf):
    """(address, file path, end_sequence) for every row of every line table."""
    units = comp_dirs(elf)
    table = dirs = files = comp = None
    for line in dwarfdump(elf, "--debug-line").splitlines():
        if m := re.match(r"debug_line\[(0x[0-9a-f]+)\]", line):
            comp = units.get(int(m.group(1), 16), "")
            dirs, files, table = {0: comp}, {}, None
        elif m := re.match(r'include_directories\[\s*(\d+)\] = "(.*)"', line):
            d = m.group(2)
            dirs[int(m.group(1))] = d if d.startswith("/") else f"{comp}/{d}"
        elif m := re.match(r"file_names\[\s*(\d+)\]:", line):
            table = int(m.group(1))
        elif table is not None and (m := re.match(r'\s+name: "(.*)"', line)):
            files[table] = [m.group(1), 0]
        elif table is not None and (m := re.match(r"\s+dir_index: (\d+)", line)):
            name = files[table][0]
            files[table] = name if name.startswith("/") else f"{dirs.get(int(m.group(1)), '')}/{name}"
        elif m := re.match(r"(0x[0-9a-f]+)\s+\d+\s+\d+\s+(\d+)\s.*", line):
            yield int(m.group(1), 16), files.get(int(m.group(2)), "?"), "end_sequence" in line


def text_range(elf):
    out = subprocess.run(["size", "-A", elf], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == ".text":
            return int(parts[2]), int(parts[2]) + int(parts[1])
    raise SystemExit("no .text section")


def main():
    elf = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else ""
    lo, hi = text_range(elf)
    by_crate = collections.Counter()
    prev = None
    # A sequence of rows covers one function. The linker leaves the line tables of functions it
    # dropped in place, relocated to address 0: skip every sequence that starts outside `.text`.
    dropped = False
    for addr, path, end in rows(elf):
        if prev is None:
            dropped = not lo <= addr < hi
        elif not dropped:
            start, file = prev
            a, b = max(start, lo), min(addr, hi)
            if b > a:
                by_crate[crate_of(file, root)] += b - a
        prev = None if end else (addr, path)
    total = hi - lo
    known = sum(by_crate.values())
    if total > known:
        by_crate["(no line information)"] += total - known
    print("| crate | `.text` bytes | share |")
    print("| --- | ---: | ---: |")
    for crate, size in by_crate.most_common():
        print(f"| {crate} | {size} | {100 * size / total:.0f} % |")
    print(f"| **total** | **{total}** | |")


if __name__ == "__main__":
    main()
