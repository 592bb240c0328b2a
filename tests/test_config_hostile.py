"""Hostile config files: each is refused with one `file: reason` line and exit 2, quickly and whole.

The bounds (size, nesting, values after alias expansion, problems listed) keep a
corrupt or malicious file from stalling start-up or flooding the terminal.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from exporter.config.check import check_config_command
from exporter.config.problems import MAX_PROBLEMS
from exporter.config.yamlfile import MAX_CONFIG_BYTES, MAX_NESTING, MAX_VALUES


def _billion_laughs(levels: int) -> str:
    lines = ['  - &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"  - &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "anchors:\n" + "\n".join(lines) + f"\ncompanies:\n  include: *l{levels - 1}\n"


HOSTILE = {
    "billion_laughs_9": (_billion_laughs(9), f"holds more than {MAX_VALUES} values"),
    "billion_laughs_7": (_billion_laughs(7), f"holds more than {MAX_VALUES} values"),
    "deep_flow_10000": ("polling: " + "[" * 10_000 + "]" * 10_000 + "\n", "nest"),
    "deep_block_40": (
        "".join("  " * depth + f"k{depth}:\n" for depth in range(40)) + "  " * 40 + "v: 1\n",
        f"nested deeper than {MAX_NESTING} levels",
    ),
    "huge_comment": ("# " + "x" * (8 * 1024 * 1024) + "\n", "larger than 1024 KiB: not a config file"),
    "many_unknown_keys": (
        "polling:\n" + "".join(f"  k{i}: 1\n" for i in range(50_000)),
        f"holds more than {MAX_VALUES} values",
    ),
    "nul_byte": ("polling:\n  interval: 6\x000\n", "line 2, column 14: a NUL byte is not allowed"),
    "not_utf8": ("polling:\n  interval: 60 # caf\udce9\n", "not UTF-8 text"),
}


def _check(tmp_path: Path, text: str) -> tuple[int, list[str], Path]:
    path = tmp_path / "config.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    err = io.StringIO()
    code = check_config_command(path, {}, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue().splitlines(), path


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_gives_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    text, reason = HOSTILE[name]
    code, lines, path = _check(tmp_path, text)
    assert code == 2
    assert lines[0] == f"{path}: invalid configuration (1 problem)"
    assert len(lines) == 2, lines
    assert lines[1].startswith(f"{path}: ")
    assert reason in lines[1]


def test_the_size_bound_is_exact(tmp_path: Path) -> None:
    padding = "#" * (MAX_CONFIG_BYTES - len("polling: {interval: 60}\n") - 1) + "\n"
    code, _, _ = _check(tmp_path, "polling: {interval: 60}\n" + padding)
    assert code == 0
    code, lines, _ = _check(tmp_path, "polling: {interval: 60}\n" + padding + "#")
    assert (code, "larger than" in lines[1]) == (2, True)


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    text = "companies:\n  include: &names [a*, b*]\n  exclude: [x*]\ndata_types:\n  include: *names\n"
    code, lines, _ = _check(tmp_path, text)
    assert (code, lines) == (0, [])


def test_many_problems_are_listed_up_to_a_bound_then_counted(tmp_path: Path) -> None:
    text = "polling:\n" + "".join(f"  unknown_{i}: 1\n" for i in range(5_000))
    code, lines, _ = _check(tmp_path, text)
    assert code == 2
    assert lines[0].endswith("(5000 problems)")
    assert len(lines) == MAX_PROBLEMS + 2
    assert lines[-1] == f"... and {5_000 - MAX_PROBLEMS} more problems"
