from __future__ import annotations

from storage.model import make_labels
from udfs.label_hash import encode_labels, label_hashes, xxh64


def test_xxh64_matches_published_test_vectors():
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1  # >= 32 B


def test_stringlabels_encoding_prefixes_each_string_with_its_size():
    lbls = make_labels({"b": "x" * 300, "a": "1"})
    enc = encode_labels(lbls)
    assert enc[:4] == b"\x01a\x011"
    assert enc[4:10] == b"\x01b\xff\x2c\x01\x00"  # 300 = 0x012c, as 0xff + 3 bytes
    assert len(label_hashes([lbls, lbls])) == 2
