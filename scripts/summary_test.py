#!/usr/bin/env python3
"""Tests of scripts/summary.py for the records the firmware runs in CI do not print: errors, a
file that differs, a wrong reply, and records that do not read. (`scripts/firmware.sh` checks
the rest against the `messages` build's own lines.)

    python3 scripts/summary_test.py
"""

import importlib.util
import pathlib
import unittest

_spec = importlib.util.spec_from_file_location(
    "summary", pathlib.Path(__file__).with_name("summary.py")
)
summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(summary)

# The banner of a full image: server and client, MTU 1500, 4 slots, 64 KiB with this CRC.
BANNER = "halfclose 3 5dc 4 10000 270f78aa"
# Time, RAM and sizes, the same in every summary below.
TAIL = "f4240 2710 1337a 274 d59c 26c 2080 178c 38 120 100 98"


def read(*lines):
    decoder = summary.Decoder("lm3s6965")
    out = []
    for line in lines:
        out += decoder.line(line)
    return out


class Records(unittest.TestCase):
    def test_a_banner_reads_as_the_messages_build_words_it(self):
        self.assertEqual(
            read(BANNER),
            [
                "halfclose on LM3S6965 (Cortex-M3): server + client over Loopback<1500, 4> (Ip), "
                "65536 byte payload, crc32 270f78aa"
            ],
        )

    def test_errors_on_both_sides_name_their_variant_phase_and_bytes(self):
        # Server: reset in the transfer phase after 0x400 bytes; client: timed out in the
        # reply phase after 0x800 bytes, 0x800 received.
        lines = read(BANNER, f"summary 3 0 2 6 2 400 2 7 3 800 800 {TAIL}")
        self.assertEqual(
            lines[1], "server: error: connection reset in the transfer phase after 1024 bytes"
        )
        self.assertEqual(
            lines[2],
            "client: error: timed out in the reply phase after 2048 bytes (2048 bytes received)",
        )

    def test_a_file_that_differs_says_where(self):
        # 65536 bytes, another CRC, the first difference at offset 9 (sent as 10).
        lines = read(BANNER, f"summary 3 0 0 1 10000 3e8 deadbeef a {TAIL}")
        self.assertIn(
            "client: received 65536 bytes in 1000 us, crc32 deadbeef, BYTES DIFFER", lines
        )
        self.assertIn(
            "client: error: expected 65536 bytes with crc32 270f78aa, first difference at 9", lines
        )

    def test_a_reply_is_quoted_as_rust_writes_it(self):
        reply = " ".join(f"{b:x}" for b in b'Thank "you"\0\xff')
        # The server done (its reply 100 us before its FIN), the client not over.
        lines = read(
            BANNER, f"summary 3 0 1 10000 64 1 3e8 {len(reply.split()):x} {reply} 0 {TAIL}"
        )
        self.assertIn('reply "Thank \\"you\\"\\0\\xff" 100 us before its FIN', lines[1])

    def test_a_run_over_its_limit_says_so_first(self):
        lines = read(BANNER, f"summary 3 ea60 0 0 {TAIL}")
        self.assertEqual(lines[1], "error: not over after 60000 ms of simulated time")

    def test_a_record_with_numbers_left_over_or_missing_does_not_read(self):
        with self.assertRaises(ValueError):
            read(BANNER, f"summary 3 0 0 0 {TAIL} 1")
        with self.assertRaises(ValueError):
            read("baseline 1 2")

    def test_lines_in_words_pass_through(self):
        self.assertEqual(read("result: PASS"), ["result: PASS"])
        self.assertEqual(read("hard fault at pc 00000abc"), ["hard fault at pc 00000abc"])


if __name__ == "__main__":
    unittest.main()
