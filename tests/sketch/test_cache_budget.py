"""The decoded-window budget: from the machine's memory or cgroup limit, a flag or the
environment."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from planner import sketch_cache
from planner.sketch_budget import (
    CEILING,
    ENV,
    FALLBACK,
    FLOOR,
    Budget,
    cgroup_memory_limit,
    machine_budget,
    parse_bytes,
    resolve_budget,
    usable_memory,
)
from server.cli import build_parser
from server.commands.serve import configure_sketch_cache
from tests.server.conftest import server_factory  # noqa: F401  (fixture)

GiB, MiB = 1 << 30, 1 << 20


@pytest.fixture
def restore_budget():
    before = sketch_cache.budget_info()
    yield
    sketch_cache.configure(before)


@pytest.mark.parametrize(
    ("memory", "want"),
    [
        (16 * GiB, 2 * GiB),  # an eighth
        (24 * GiB, 3 * GiB),
        (1 * GiB, FLOOR),  # an eighth would be 128 MiB: the floor
        (512 * MiB, 128 * MiB),  # a tiny machine: a quarter at most, the floor does not apply
        (256 * GiB, CEILING),  # an eighth would be 32 GiB: the ceiling
        (None, FALLBACK),  # unknown memory: the old fixed default
    ],
)
def test_the_machine_budget_is_an_eighth_of_memory_within_floor_and_ceiling(memory, want):
    assert machine_budget(memory) == want


def test_a_cgroup_limit_below_the_ram_is_the_usable_memory():
    assert usable_memory(64 * GiB, 4 * GiB) == 4 * GiB
    assert usable_memory(8 * GiB, None) == 8 * GiB
    assert usable_memory(8 * GiB, 32 * GiB) == 8 * GiB
    assert usable_memory(None, None) is None


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cgroup_v2_memory_max_of_the_process_cgroup_is_read(tmp_path: Path):
    _tree(tmp_path, {"cg/system.slice/tidemark.service/memory.max": "2147483648\n"})
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/system.slice/tidemark.service\n")
    assert cgroup_memory_limit(tmp_path / "cg", proc) == 2 * GiB


def test_cgroup_v2_max_means_no_limit(tmp_path: Path):
    _tree(tmp_path, {"cg/memory.max": "max\n"})
    assert cgroup_memory_limit(tmp_path / "cg", tmp_path / "missing") is None


def test_a_container_sees_its_own_limit_at_the_cgroup_root(tmp_path: Path):
    # Inside a container the process' cgroup path names the host's hierarchy, which the
    # container's cgroup mount does not have: the root's memory.max is the container's.
    _tree(tmp_path, {"cg/memory.max": "1073741824"})
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/kubepods/pod1/abc\n")
    assert cgroup_memory_limit(tmp_path / "cg", proc) == GiB


def test_cgroup_v1_limit_is_read_and_its_unlimited_value_ignored(tmp_path: Path):
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:memory:/docker/abc\n1:cpu:/\n0::/\n")
    _tree(tmp_path, {"cg/memory/docker/abc/memory.limit_in_bytes": str(3 * GiB)})
    assert cgroup_memory_limit(tmp_path / "cg", proc) == 3 * GiB
    _tree(tmp_path, {"cg2/memory/memory.limit_in_bytes": "9223372036854771712"})
    assert cgroup_memory_limit(tmp_path / "cg2", proc) is None


def test_the_lowest_of_several_cgroup_limits_counts(tmp_path: Path):
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/a\n")
    _tree(tmp_path, {"cg/a/memory.max": str(6 * GiB), "cg/memory.max": str(5 * GiB)})
    assert cgroup_memory_limit(tmp_path / "cg", proc) == 5 * GiB


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("536870912", 536870912),
        ("512MiB", 512 * MiB),
        ("2GB", 2_000_000_000),
        ("1.5GiB", 3 * GiB // 2),
        ("64 KiB", 64 << 10),
        ("1tb", 10**12),
        ("25%", 4 * GiB),
        (1024, 1024),
    ],
)
def test_sizes_are_bytes_or_numbers_with_a_unit_or_a_percentage(text, want):
    assert parse_bytes(text, memory_bytes=16 * GiB) == want


@pytest.mark.parametrize("text", ["", "lots", "12XB", "-5", "5 M B", "150%", "1e9"])
def test_malformed_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_bytes(text, memory_bytes=16 * GiB)


def test_a_percentage_needs_a_known_memory_size():
    with pytest.raises(ValueError, match="memory size is unknown"):
        parse_bytes("10%")


def test_the_flag_wins_over_the_environment_which_wins_over_the_machine():
    env = {ENV: "300MiB"}
    assert resolve_budget("1GiB", env, 16 * GiB) == Budget(GiB, "flag")
    assert resolve_budget(None, env, 16 * GiB) == Budget(300 * MiB, "env")
    assert resolve_budget(None, {}, 16 * GiB) == Budget(2 * GiB, "machine", 16 * GiB)
    assert resolve_budget(None, {ENV: "  "}, 16 * GiB).source == "machine"
    assert resolve_budget("50%", env, 16 * GiB) == Budget(8 * GiB, "flag", 16 * GiB)


def test_an_invalid_environment_value_is_an_error_at_serve_and_skipped_at_import(caplog):
    with pytest.raises(ValueError, match=ENV):
        resolve_budget(None, {ENV: "lots"}, 16 * GiB)
    with caplog.at_level(logging.WARNING, logger="tidemark"):
        got = resolve_budget(None, {ENV: "lots"}, 16 * GiB, strict=False)
    assert got == Budget(2 * GiB, "machine", 16 * GiB)
    assert ENV in caplog.text


def test_serve_reads_the_flag_and_sets_and_logs_the_budget(restore_budget, caplog):
    args = build_parser().parse_args(["serve", "--sketch-cache-bytes", "384MiB"])
    assert args.sketch_cache_bytes == "384MiB"
    with caplog.at_level(logging.INFO, logger="tidemark"):
        configure_sketch_cache(args.sketch_cache_bytes, {ENV: "1GiB"})
    assert sketch_cache.budget() == 384 * MiB
    assert sketch_cache.status()["budget_source"] == "flag"
    assert sketch_cache.cache_stats()["budget_bytes"] == 384 * MiB
    assert "sketch cache budget 384.0 MiB (402653184 bytes) from flag" in caplog.text
    plain = build_parser().parse_args(["serve"])
    configure_sketch_cache(plain.sketch_cache_bytes, {ENV: "1GiB"})
    assert sketch_cache.budget_info() == Budget(GiB, "env")


def test_serve_refuses_a_malformed_flag(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--sketch-cache-bytes", "lots"])
    assert "invalid byte size" in capsys.readouterr().err


def test_precompute_status_shows_the_effective_budget_beside_the_cache_stats(
    server_factory,  # noqa: F811
    restore_budget,
):
    configure_sketch_cache("300MiB", {})
    client, _ = server_factory()
    reply = client.get("/api/v1/precompute/status")
    assert reply.status == 200, reply.body
    got = reply.json()["data"]["sketch_cache"]
    assert got["budget_bytes"] == 300 * MiB and got["budget_source"] == "flag"
    assert {"bytes", "blocks", "hits", "misses", "evictions", "compactions"} <= got.keys()
    steps = reply.json()["data"]["step_cache"]  # the step answers' own budget, beside it
    assert {"bytes", "budget", "entries", "hits", "misses", "invalidated"} <= steps.keys()
    raw = reply.json()["data"]["raw_step_cache"]  # the newest raw steps kept
    assert {"bytes", "entries", "hits", "misses", "stale"} <= raw.keys()
