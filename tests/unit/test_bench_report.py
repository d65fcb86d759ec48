"""bench/report.py's rendering of the benchmarks' rows, the rows made by the benchmarks' own ``table`` from
hand-made figures: no benchmark runs here."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up; the benchmarks import `_harness`
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    """bench/_harness.py, bench/report.py and the benchmarks whose rows these tests render."""
    names = {"harness": ("_harness", "_harness.py"), "report": ("bench_report", "report.py"),
             "storage": ("bench_storage", "storage.py"), "front": ("bench_front", "front.py"),
             "migrate": ("bench_migrate", "migrate.py")}
    yield {key: load(name, file) for key, (name, file) in names.items()}
    for name, _ in names.values():
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def report(bench: dict[str, ModuleType]) -> ModuleType:
    return bench["report"]


@pytest.fixture(scope="module")
def harness(bench: dict[str, ModuleType]) -> ModuleType:
    return bench["harness"]


STORAGE: dict[str, Any] = {
    "size_mib": 64,
    "runs": 5,
    "backends": {
        "s3 (moto)": {
            "cargohold": {"mib_s": 630.0, "peak_rss_delta_mb": 7.7, "peak_rss_mb": 90.0},
            "bare": {"mib_s": 600.0, "peak_rss_delta_mb": 3.9, "peak_rss_mb": 88.0},
            "ratio": 1.05,
        },
        "local disk": {
            "cargohold": {"mib_s": 10_200.0, "peak_rss_delta_mb": 120.0, "peak_rss_mb": 210.0},
            "bare": {"mib_s": 12_000.0, "peak_rss_delta_mb": 2.1, "peak_rss_mb": 89.0},
            "obstore LocalStore": {"mib_s": 100.0},
            "ratio": 0.85,
        },
    },
}
FRONT: dict[str, Any] = {
    "front, signed URL": {"rps": 20_111.0, "p50_ms": 1.35, "p99_ms": 2.83, "ratio": 0.92, "errors": 0},
    "front, token": {"rps": 1_834.0, "p50_ms": 16.4, "p99_ms": 65.7, "ratio": 0.08, "errors": 0},
    "nginx alone": {"rps": 21_913.0, "p50_ms": 0.95, "p99_ms": 2.61, "ratio": 1.0, "errors": 0},
}
MIGRATE: dict[str, Any] = {"objects": 2004, "bytes": 624_000_000, "jobs": 8, "cargohold_mib_s": [22.3, 18.2, 20.8],
                           "rclone_mib_s": [22.0, 21.0, 18.7], "ratio": 20.8 / 21.0, "peak_rss": 302_000_000,
                           "rclone": "1.60.1-DEV"}
DOC = (
    "# Performance\r\n\r\nHand-written intro: figures ≥ 0.9, µs and all.\r\n\r\n"
    "## Storage\r\n\r\nAnalysis that must stay exactly as it is.  \n\ttrailing tab\n"
)


def written(module: ModuleType, figures: dict[str, Any], command: str = "") -> dict[str, Any]:
    """What a benchmark's ``--json`` holds for these figures: its own table of them, and the figures."""
    table = module.table(figures)
    table.command = command
    return json.loads(json.dumps({"table": table.as_json(), "figures": figures}))


def front_command(harness: ModuleType) -> str:
    """The front benchmark's own command, as it makes it from its command line (``--json`` left out)."""
    argv = [str(REPO / "bench" / "front.py"), "--runs", "1", "--json", "/tmp/front.json", "--duration", "2"]
    return str(harness.reproduce(argv))


def outcomes(bench: dict[str, ModuleType]) -> list[Any]:
    report = bench["report"]
    at = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    return [
        report.Outcome("storage", [".venv/bin/python", "bench/storage.py", "--size-mb", "64"], "quick", at, 12.0,
                       written(bench["storage"], STORAGE), load=(0.5, 1.25)),
        report.Outcome("upload", [".venv/bin/python", "bench/upload.py"], "quick", at, 3.0,
                       error="failed (exit 1): RuntimeError: moto did not answer | twice"),
        report.Outcome("migrate", [".venv/bin/python", "bench/migrate.py", "--runs", "1"], "quick", at, 0.0,
                       error="not run: rclone not installed (`make bench-tools` installs it)"),
        report.Outcome("front", [".venv/bin/python", "bench/front.py"], "quick", at, 20.0,
                       written(bench["front"], FRONT, front_command(bench["harness"]))),
        report.Outcome("catalog", [".venv/bin/python", "bench/catalog.py"], "quick", at, 5.0, {"pages": {}}),
    ]


def info(report: ModuleType) -> Any:
    return report.RunInfo(
        "quick", datetime(2026, 11, 29, 18, 0, tzinfo=UTC), 95.0,
        {"cpu": "AMD EPYC", "cores": "2", "memory": "23.5 GiB", "kernel": "Linux 6.1", "python": "3.11.7"},
        {"nginx": "1.22.1", "wrk": "4.1.0", "rclone": None, "thumbor": "7.8.0", "moto": "5.2.5", "libvips": "8.18.7"},
        (0.2, 0.3, 0.4), (1.5, 1.0, 0.6), "785e47f",
    )


def rows_of(block: str, section: str) -> list[list[str]]:
    """The table rows (cells) of one benchmark's section."""
    start = block.index(f"<!-- bench {section}: begin -->")
    end = block.index(f"<!-- bench {section}: end -->")
    lines = [line for line in block[start:end].splitlines() if line.startswith("| ")]
    assert lines[0] == "| measurement | cargohold | reference | ratio | target | met? |"
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[2:]]


def test_tables_targets_and_commands(bench: dict[str, ModuleType], report: ModuleType) -> None:
    block = report.render_block(info(report), outcomes(bench))
    assert block.startswith("## Latest run")
    assert "**Quick run**" in block
    assert "AMD EPYC, 2 cores, 23.5 GiB memory, Linux 6.1, Python 3.11.7" in block
    assert "nginx 1.22.1, wrk 4.1.0, rclone not installed, thumbor 7.8.0, moto 5.2.5, libvips 8.18.7" in block
    assert "0.20, 0.30, 0.40 at start, 1.50, 1.00, 0.60 at end" in block

    assert ("`bench/storage.py`, quick run of 2026-11-29 18:00 UTC, took 12 s (load average 0.50 at its start, "
            "1.25 at its end). 64 MiB object") in block
    storage = rows_of(block, "storage")
    assert storage[0] == ["S3 (moto): download, MiB/s", "630", "600: obstore `get_async` + `stream`", "1.05", "≥ 0.9",
                          "yes"]
    assert storage[1][0] == "S3 (moto): memory growth during the read"
    assert storage[1][4:] == ["< 100 MB", "yes"]
    assert storage[2][1:] == ["10,200", "12,000: plain `os.pread` loop", "0.85", "≥ 0.9", "**no**"]
    assert storage[3][4:] == ["< 100 MB", "**no**"]  # a target on the figure itself, not the ratio
    assert storage[4][3:] == ["102.00", "", ""]  # the second reference: no target

    front = rows_of(block, "front")
    assert front[0][1:] == ["20,111 (p50 1.35 / p99 2.83 ms)",
                            "21,913 (p50 0.95 / p99 2.61 ms): nginx alone, same file", "0.92", "≥ 0.8", "yes"]
    assert front[1][3:] == ["0.08", "", ""]

    # Failures and missing tools: one row each with the reason, the report goes on.
    upload = rows_of(block, "upload")
    assert upload == [["the whole benchmark", "failed (exit 1): RuntimeError: moto did not answer \\| twice", "", "",
                       "", ""]]
    assert rows_of(block, "migrate")[0][1].startswith("not run: rclone not installed")
    assert rows_of(block, "catalog")[0][1].startswith("figures unreadable: KeyError")

    python = bench["harness"].python_shown()
    for command in (".venv/bin/python bench/storage.py --size-mb 64", f"{python} bench/front.py --runs 1 --duration 2",
                    ".venv/bin/python bench/upload.py", ".venv/bin/python bench/migrate.py --runs 1"):
        assert f"Reproduce:\n\n```sh\n{command}\n```" in block
    # The benchmark's own command wins over the one report.py ran it with.
    assert "```sh\n.venv/bin/python bench/front.py\n```" not in block
    assert "| storage | quick, 2026-11-29 18:00 UTC | 12 s | 2 of 4 | ok |" in block
    assert "| upload | quick, 2026-11-29 18:00 UTC | 3 s | 0 of 0 | failed |" in block
    assert "| migrate | quick, 2026-11-29 18:00 UTC | 0 s | 0 of 0 | not run |" in block
    assert "Targets met: 3 of 5 in this run" in block
    # Sections come in the benchmarks' order, whatever the order they ran in.
    assert block.index("<!-- bench storage: begin") < block.index("<!-- bench upload: begin") < \
        block.index("<!-- bench catalog: begin") < block.index("<!-- bench migrate: begin") < \
        block.index("<!-- bench front: begin")


def test_met_is_computed_from_the_target(harness: ModuleType) -> None:
    row = harness.Row("x", "1", ratio=0.79, target=harness.at_least(0.8))
    assert row.met() is False and row.cells()[-1] == "**no**"
    row.ratio = 0.8
    assert row.met() is True and row.cells()[-1] == "yes"
    row.ratio = None
    assert row.cells()[-1] == "n/a"
    below = harness.Target("<", 60, "s", on_ratio=False)
    assert harness.Row("y", "56.5 s", ratio=0.26, target=below, value=56.5).cells()[-2:] == ["< 60 s", "yes"]
    assert harness.Row("y", "61 s", ratio=2.0, target=below, value=61.0).met() is False
    # A ratio just under its target is not rounded onto it.
    at_least = harness.at_least(0.8)
    assert harness.Row("z", "1", ratio=0.7963, target=at_least).cells()[-3:] == ["0.796", "≥ 0.8", "**no**"]
    assert harness.Row("z", "1", ratio=0.8012, target=at_least).cells()[-3:] == ["0.80", "≥ 0.8", "yes"]


def test_text_outside_the_markers_is_kept(report: ModuleType) -> None:
    first = report.update_document(DOC, "BLOCK ONE")
    begin, end = report.BEGIN, report.END
    # Inserted after the intro, before the first section; the rest untouched, byte for byte.
    assert first.index(begin) < first.index(end) < first.index("## Storage")
    assert first.index("Hand-written intro") < first.index(begin)
    inserted = first[first.index(begin): first.index(end) + len(end) + 2]
    assert first.replace(inserted, "", 1) == DOC

    second = report.update_document(first, "BLOCK\nTWO")
    assert "BLOCK ONE" not in second and f"{begin}\nBLOCK\nTWO\n{end}" in second
    assert second[: second.index(begin)] == first[: first.index(begin)]
    assert second[second.index(end):] == first[first.index(end):]
    assert second.endswith("Analysis that must stay exactly as it is.  \n\ttrailing tab\n")
    assert report.update_document(second, "BLOCK\nTWO") == second


def test_only_keeps_the_other_sections(bench: dict[str, ModuleType], report: ModuleType) -> None:
    full = report.render_block(info(report), outcomes(bench))
    doc = report.update_document(DOC, full)
    previous = report.previous_sections(doc)
    assert set(previous) == {"storage", "upload", "migrate", "front", "catalog"}
    again = report.Outcome("front", [".venv/bin/python", "bench/front.py"], "full",
                           datetime(2026, 11, 30, 9, 0, tzinfo=UTC), 60.0, written(bench["front"], FRONT))
    block = report.render_block(info(report), [again], previous)
    assert previous["storage"] in block and previous["upload"] in block
    assert previous["front"] not in block and "`bench/front.py`, full run of 2026-11-30 09:00 UTC" in block
    assert "| storage | kept from an earlier run | | | see its section |" in block


def test_a_table_survives_its_json(harness: ModuleType, bench: dict[str, ModuleType]) -> None:
    table = bench["storage"].table(STORAGE)
    table.command = "x"
    again = harness.Table.from_json(json.loads(json.dumps(table.as_json())))
    assert again == table and again.targets() == (2, 4)
    assert again.rows[1].target == harness.Target("<", 100, "MB", on_ratio=False)


def test_migrate_rows(bench: dict[str, ModuleType]) -> None:
    rows = [row.cells() for row in bench["migrate"].table(MIGRATE).rows]
    assert rows[0][1:] == ["20.8 (runs 22.3, 18.2, 20.8)", "21.0 (runs 22.0, 21.0, 18.7): rclone 1.60.1-DEV", "0.99",
                           "≥ 1", "**no**"]
    assert rows[1][:2] == ["`cargohold migrate` peak RSS", "302 MB"]


def test_the_command_leaves_json_out(harness: ModuleType) -> None:
    script = str(REPO / "bench" / "links.py")
    assert harness.reproduce([script, "--json=/tmp/l.json", "--quick"]).endswith(" bench/links.py --quick")
    assert harness.reproduce([script, "--json", "/tmp/l.json"]).endswith(" bench/links.py")
