from __future__ import annotations

import platform

import pytest

from server.allocator import tune_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_allocator_thresholds(monkeypatch):
    monkeypatch.delenv("TIDEMARK_MALLOC_TUNING", raising=False)
    assert tune_allocator() is True


def test_allocator_tuning_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("TIDEMARK_MALLOC_TUNING", "0")
    assert tune_allocator() is False
