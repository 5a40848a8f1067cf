#!/usr/bin/env python3
"""Where a firmware image's instructions go, by source file and by function, from QEMU's trace.

    python3 scripts/profile-firmware.py IMAGE.elf TRACE RUN BYTES [ROOT]

TRACE is QEMU's log of `-d in_asm,exec,nochain` for a run of IMAGE (a path; a FIFO works): every
translation block as it is translated (its instructions' addresses) and every time one runs.
Each instruction run is counted once, so the counts are the emulated core's instructions, as
`-icount` counts them. RUN picks the part of the trace to count: the image's output lines end
the parts (each line is one call of `out::Line::flush`), and part RUN is the one after the
RUN-th line, so for the cost image (src/cost.rs), whose first line is the calibration, part K is
the K-th exchange of its sweep, with the formatting of its own result line. BYTES is what that
exchange moved, for the per-byte column.

With LTO nearly everything is inlined into a few functions, so the functions alone say little.
The DWARF line table maps every instruction to the source line it came from, inlined or not (as
scripts/size-by-crate.py uses it for code size): the first table counts executed instructions by
that file, the second by the function they sit in.
"""

import bisect
import collections
import importlib.util
import os
import re
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("size_by_crate", os.path.join(here, "size-by-crate.py"))
sizes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sizes)


def functions(elf):
    """(start, size, name) of every function, sorted; Thumb's odd addresses made even."""
    out = subprocess.run(["nm", "-n", "-S", "-C", elf], check=True, capture_output=True, text=True)
    syms = []
    for line in out.stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in "tTW":
            syms.append((int(parts[0], 16) & ~1, int(parts[1], 16), parts[3]))
    return sorted(syms)


def source_ranges(elf, root):
    """Sorted (start, end, file) address ranges of the line table, a file named by its crate."""
    lo, hi = sizes.text_range(elf)
    ranges, prev, dropped = [], None, False
    for addr, path, end in sizes.rows(elf):
        if prev is None:
            dropped = not lo <= addr < hi
        elif not dropped and addr > prev[0]:
            ranges.append((prev[0], addr, name_of(prev[1], root)))
        prev = None if end else (addr, path)
    return sorted(ranges)


def name_of(path, root):
    crate = sizes.crate_of(path, root)
    tail = re.sub(r".*/(src|library/[a-z_-]+/src)/", "", path)
    return f"{crate}: {tail}"


def trace(path, flush, run):
    """Instructions per translation block start, and runs of each block in part `run`."""
    blocks, runs, part, current = {}, collections.Counter(), 0, None
    with open(path, errors="replace") as log:
        for line in log:
            if line.startswith("Trace "):
                pc = int(line.split("[", 1)[1].split("/")[1], 16)
                if pc == flush:
                    part += 1
                elif part == run:
                    runs[pc] += 1
            elif line.startswith("IN:"):
                current = []
            elif current is not None:
                if m := re.match(r"0x([0-9a-f]+):", line):
                    current.append(int(m.group(1), 16))
                elif not line.strip():
                    if current:
                        blocks[current[0]] = current
                    current = None
    return blocks, runs


def lookup(starts, items, addr, end_of):
    i = bisect.bisect_right(starts, addr) - 1
    return items[i] if i >= 0 and addr < end_of(items[i]) else None


def main():
    elf, path, run, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    root = sys.argv[5] if len(sys.argv) > 5 else ""
    syms = functions(elf)
    flush = [s for s in syms if s[2].endswith("out::Line>::flush")]
    if not flush:
        raise SystemExit("no out::Line::flush in the image: cannot find the parts of the trace")
    ranges = source_ranges(elf, root)
    blocks, runs = trace(path, flush[0][0], run)
    sym_starts, range_starts = [s[0] for s in syms], [r[0] for r in ranges]
    by_file, by_fn, total = collections.Counter(), collections.Counter(), 0
    for pc, n in runs.items():
        for addr in blocks.get(pc, [pc]):
            r = lookup(range_starts, ranges, addr, lambda r: r[1])
            f = lookup(sym_starts, syms, addr, lambda s: s[0] + max(s[1], 2))
            by_file[r[2] if r else "(no line information)"] += n
            by_fn[f[2] if f else "(no symbol)"] += n
            total += n
    if not total:
        raise SystemExit(f"part {run} of the trace ran no instructions")
    for title, counts in (("source file (inlined code by its own file)", by_file), ("function", by_fn)):
        print(f"| {title} | instructions | per byte | share |")
        print("| --- | ---: | ---: | ---: |")
        shown = 0
        for name, n in counts.most_common():
            if n * 200 < total:  # under 0.5 %: summed below
                break
            print(f"| {name} | {n} | {n / nbytes:.2f} | {100 * n / total:.1f} % |")
            shown += n
        rest = total - shown
        print(f"| (the rest, each under 0.5 %) | {rest} | {rest / nbytes:.2f} | {100 * rest / total:.1f} % |")
        print(f"| **total** | **{total}** | **{total / nbytes:.2f}** | |")
        print()


if __name__ == "__main__":
    main()
