"""XXH64 for the sketch store's log frames equals the reference xxHash on every tail path (under
a stripe, whole stripes, 8-, 4- and 1-byte tails) and with a seed. Expected values come from the
``xxhash`` package (the C library) over the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from storage.sketch_checksum import frame_check, xxh64

DATA = bytes((i * 7 + 3) % 256 for i in range(1000))
REFERENCE = {
    0: 0xEF46DB3751D8E999,
    1: 0x1F25C8D0BC1F4BB6,
    3: 0x31D2363F52E564C9,
    4: 0x9BB64B7D66EE9FDA,
    7: 0x9A7B149959CE60D8,
    8: 0xDAB99D95C6F90092,
    31: 0xA2AA5F33CC4A6119,
    32: 0x23C3C17EF790FD97,
    33: 0x50A7CFC7BA588784,
    63: 0x5E3E54B431C7493C,
    64: 0x0EB64B3EF6EEB01F,
    100: 0xA61F8D4C170FE531,
    1000: 0x5F235FA033F1A3FB,
}


@pytest.mark.parametrize(("n", "want"), sorted(REFERENCE.items()))
def test_xxh64_matches_the_reference_for_every_tail_length(n, want):
    assert xxh64(DATA[:n]) == want
    assert xxh64(np.frombuffer(DATA, np.uint8)[:n]) == want  # arrays and bytes alike


def test_xxh64_takes_a_seed_and_abc_has_its_published_value():
    assert xxh64(DATA[:100], seed=12345) == 0xACB8A02891FEA7D2
    assert xxh64(b"abc") == 0x44BC2CF5AD770999


def test_frame_check_is_the_low_half_and_sees_a_single_flipped_bit_anywhere():
    data = bytearray(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    check = frame_check(bytes(data))
    assert check == xxh64(bytes(data)) & 0xFFFF_FFFF
    for pos in (0, 31, 32, 2000, 4088, 4095):
        data[pos] ^= 0x01
        assert frame_check(bytes(data)) != check
        data[pos] ^= 0x01
