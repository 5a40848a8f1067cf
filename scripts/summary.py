#!/usr/bin/env python3
"""Print the records of a small firmware image's output as the lines the `messages` build prints.

    python3 scripts/summary.py BOARD < qemu-output > lines

The small build (firmware/cortex-m-qemu without the `messages` feature) prints its banner, its
summary and its errors as records: a tag, then numbers in hexadecimal, one space apart
(`summary 1 0 0 3e8 ...`; `out::Record` in firmware/cortex-m-qemu/src/out.rs). The words that name
the numbers live here, not in the image's flash, as defmt keeps its format strings on the host.
Every other line passes through unchanged. BOARD (lm3s6965, microbit, virt) names the board and
its timer, which the records leave out. A record that does not read whole is an error (exit 1).

The layouts are those of `transfer::record`, `transfer::banner`, `set_up_failed` and `baseline`
(firmware/cortex-m-qemu/src/transfer.rs and main.rs), in their order.
"""

import sys

BOARDS = {
    "lm3s6965": ("LM3S6965 (Cortex-M3)", "SysTick cycles"),
    "microbit": ("nRF51822 micro:bit (Cortex-M0)", "SysTick cycles"),
    "virt": ("QEMU virt (RV32IMAC)", "mtime ticks"),
}

# `Record::error`'s codes.
ERRORS = {
    1: "cannot listen",
    2: "cannot connect",
    3: "cannot connect: unaddressable",
    4: "the receive buffer is too large",
    5: "connection refused",
    6: "connection reset",
    7: "timed out",
    8: "the file source failed",
    9: "the file sink failed",
    10: "wrong reply",
    11: "reply too long",
}
PHASES = {1: "connect", 2: "transfer", 3: "reply", 4: "a later"}
REFUSED = 5

# The layout's bits (`transfer::LAYOUT`).
SERVER, CLIENT, ETHERNET = 1, 2, 4


class Numbers:
    """A record's numbers, read in order."""

    def __init__(self, words):
        self.words = words
        self.at = 0

    def __call__(self):
        if self.at == len(self.words):
            raise ValueError("the record ends early")
        n = int(self.words[self.at], 16)
        self.at += 1
        return n

    def done(self):
        if self.at != len(self.words):
            raise ValueError(f"{len(self.words) - self.at} number(s) left over")


def error(n):
    """An error's three numbers, in the words of the image without `messages` before records."""
    variant, phase, nbytes = n(), n(), n()
    text = ERRORS.get(variant, "error")
    if phase:
        text += f" in the {PHASES.get(phase, 'a later')} phase"
    return variant, f"{text} after {nbytes} bytes"


def quoted(data):
    """Bytes in quotes, as Rust writes them (`"Thank you\\0"`)."""
    out = []
    for b in data:
        if b in b'"\\':
            out.append("\\" + chr(b))
        elif b == 0:
            out.append("\\0")
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return '"' + "".join(out) + '"'


class Decoder:
    def __init__(self, board):
        self.name, self.unit = BOARDS[board]
        # The banner's payload, for the client's verdict.
        self.payload = None

    def banner(self, n):
        layout, mtu, slots, length, crc = n(), n(), n(), n(), n()
        self.payload = (length, crc)
        sides = {SERVER | CLIENT: "server + client", SERVER: "server only", CLIENT: "client only"}
        medium = "Ethernet" if layout & ETHERNET else "Ip"
        return [
            f"halfclose on {self.name}: {sides[layout & (SERVER | CLIENT)]} over "
            f"Loopback<{mtu}, {slots}> ({medium}), {length} byte payload, crc32 {crc:08x}"
        ]

    def setup_error(self, n):
        return [f"error: setting up: {error(n)[1]}"]

    def baseline(self, n):
        ticks, peak, size = n(), n(), n()
        return [
            f"halfclose on {self.name}: baseline, no network",
            f"time: {ticks} {self.unit}",
            f"ram: stack peak {peak} of {size} bytes; socket buffers 0 bytes; "
            "loopback ring 0 bytes",
        ]

    def summary(self, n):
        lines = []
        layout, over = n(), n()
        if over:
            lines.append(f"error: not over after {over} ms of simulated time")
        if layout & SERVER:
            kind = n()
            if kind == 1:
                sent, reply_us, before, conn_us, kept = n(), n(), n(), n(), n()
                reply = bytes(n() for _ in range(kept))
                lines.append(
                    f"server: sent {sent} bytes, reply {quoted(reply)} {reply_us} us "
                    f"{'before' if before else 'after'} its FIN, connection {conn_us} us"
                )
            elif kind == 2:
                lines.append(f"server: error: {error(n)[1]}")
            elif not layout & CLIENT:
                lines.append(f"server: listened {n()} ms, no client in this image")
        if layout & CLIENT:
            kind = n()
            if kind == 1:
                received, us, crc, mismatch = n(), n(), n(), n()
                verdict = "BYTES DIFFER" if mismatch else "every byte matches"
                lines.append(
                    f"client: received {received} bytes in {us} us, crc32 {crc:08x}, {verdict}"
                )
                length, expected = self.payload or (None, None)
                if (received, crc, mismatch) != (length, expected, 0):
                    first = mismatch - 1 if mismatch else "none"
                    lines.append(
                        f"client: error: expected {length} bytes with crc32 {expected:08x}, "
                        f"first difference at {first}"
                    )
            elif kind == 2:
                variant, text = error(n)
                received = n()
                if variant == REFUSED and not layout & SERVER:
                    lines.append(
                        "client: connection refused, as expected with no server in this image"
                    )
                else:
                    lines.append(f"client: error: {text} ({received} bytes received)")
        us, steps, cycles = n(), n(), n()
        peak, size, transfer_peak, buffers, ring = n(), n(), n(), n(), n()
        iface, socket = n(), n()
        lines += [
            f"time: {us} us on the step clock ({steps} polls), {cycles} {self.unit}",
            f"ram: stack peak {peak} of {size} bytes ({transfer_peak} until the transfer was "
            f"over); socket buffers {buffers} bytes; loopback ring {ring} bytes",
            f"sizes: Interface {iface} bytes, tcp::Socket {socket} bytes",
        ]
        if layout & SERVER:
            lines.append(f"sizes: Server<&[u8], 1> {n()} bytes")
        if layout & CLIENT:
            lines.append(f"sizes: Client<Check> {n()} bytes")
        return lines

    def line(self, text):
        tag, *words = text.split(" ")
        read = {
            "halfclose": self.banner,
            "setup-error": self.setup_error,
            "baseline": self.baseline,
            "summary": self.summary,
        }.get(tag)
        # Not a record: a line in words (the result, a fault), or the banner in words.
        if read is None or not words or not all(_is_hex(w) for w in words):
            return [text]
        n = Numbers(words)
        lines = read(n)
        n.done()
        return lines


def _is_hex(word):
    return word != "" and all(c in "0123456789abcdef" for c in word)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in BOARDS:
        sys.exit(f"usage: summary.py {{{','.join(BOARDS)}}} < output")
    decoder = Decoder(sys.argv[1])
    status = 0
    for raw in sys.stdin:
        text = raw.rstrip("\n")
        try:
            lines = decoder.line(text)
        except (ValueError, KeyError, TypeError) as e:
            print(f"summary.py: cannot read the record {text!r}: {e}", file=sys.stderr)
            lines, status = [text], 1
        print("\n".join(lines))
    sys.exit(status)


if __name__ == "__main__":
    main()
