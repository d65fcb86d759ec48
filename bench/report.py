"""One performance report: runs every benchmark under bench/ and writes its figures into docs/PERFORMANCE.md.

Each benchmark (storage, upload, catalog, links, cache, migrate, catalog_copy, front) runs as a subprocess with ``--json
<tmp file>``, its output streamed through. From the JSON each becomes one table, measurement | cargohold |
reference | ratio | target | met?, with the command that reproduces it. Only the generated block of
docs/PERFORMANCE.md, between ``<!-- make bench: begin -->`` and ``<!-- make bench: end -->``, is rewritten
(the markers are put after the intro paragraph the first time); the hand-written analysis outside it is kept
byte for byte. The block starts with the machine (CPU, cores, memory, kernel, Python), the versions of the
references (nginx, wrk, rclone, thumbor, moto, libvips, ...) and the load average at start and end.

A benchmark that fails, times out or whose tool is missing (``make bench-tools``) gets a row saying so, with
the reason; the report goes on with the next. With ``--only``, the other benchmarks' sections of the block
are kept from the earlier run (each section carries its own date).

    .venv/bin/python bench/report.py [--quick] [--only NAME[,NAME]] [--dry-run] [--timeout SECONDS] [--doc PATH]

``--quick`` passes each benchmark its small options (the whole report in a few minutes); ``--dry-run`` prints
the commands and runs nothing.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
DOC = REPO / "docs" / "PERFORMANCE.md"
THUMBOR_VENV = REPO / ".bench" / "thumbor-venv"
BEGIN = "<!-- make bench: begin -->"
END = "<!-- make bench: end -->"
SECTION = re.compile(r"<!-- bench (\w+): begin -->\n.*?<!-- bench \1: end -->", re.DOTALL)
MiB = 1024 * 1024
DEFAULT_TIMEOUT = 3600.0


# --- targets and rows ---------------------------------------------------------------------------------------


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
_SHOWN = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}


@dataclass(frozen=True)
class Target:
    """What a row must reach: ``op limit`` on the row's ratio, or on its own ``value`` (``on_ratio=False``)."""

    op: str
    limit: float
    unit: str = ""
    on_ratio: bool = True
    label: str = ""
    """Shown instead of ``op limit unit`` when given."""

    def __post_init__(self) -> None:
        if self.op not in _COMPARE:
            raise ValueError(f"unknown comparison {self.op!r}")

    def text(self) -> str:
        return self.label or f"{_SHOWN[self.op]} {self.limit:g}{(' ' + self.unit) if self.unit else ''}"

    def met(self, quantity: float | None) -> bool | None:
        return None if quantity is None else _COMPARE[self.op](quantity, self.limit)


def at_least(limit: float) -> Target:
    return Target(">=", limit)


@dataclass
class Row:
    measurement: str
    cargohold: str
    reference: str = ""
    ratio: float | None = None
    """cargohold / reference for rates, reference / cargohold for times: above 1, cargohold is ahead."""
    target: Target | None = None
    value: float | None = None
    """The figure the target compares when it is not on the ratio."""

    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.target.met(self.ratio if self.target.on_ratio else self.value)

    def shown_ratio(self) -> str:
        """Two decimals, more when two would round across the target (0.796 against >= 0.8 is not 0.80)."""
        if self.ratio is None:
            return ""
        for digits in (2, 3, 4):
            text = f"{self.ratio:.{digits}f}"
            if self.target is None or not self.target.on_ratio or \
                    self.target.met(float(text)) == self.target.met(self.ratio):
                return text
        return f"{self.ratio:.5f}"

    def cells(self) -> list[str]:
        met = self.met()
        shown = "" if self.target is None else "n/a" if met is None else "yes" if met else "**no**"
        return [self.measurement, self.cargohold, self.reference, self.shown_ratio(),
                "" if self.target is None else self.target.text(), shown]


@dataclass
class Table:
    about: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| measurement | cargohold | reference | ratio | target | met? |", "| --- | --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(cell(c) for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


# --- number formats -----------------------------------------------------------------------------------------


def rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


# --- one table per benchmark, from its JSON -----------------------------------------------------------------


def storage_table(f: dict[str, Any]) -> Table:
    t = Table(f"{f['size_mib']} MiB object streamed down through `store.get`, median of {f['runs']} alternating "
              f"runs; memory: the reading process's RSS growth during a read.")
    references = {"s3 (moto)": "obstore `get_async` + `stream`", "local disk": "plain `os.pread` loop"}
    for backend, sides in f["backends"].items():
        label = "S3 (moto)" if backend.startswith("s3") else backend
        ours, bare = sides["cargohold"], sides["bare"]
        t.rows.append(Row(f"{label}: download, MiB/s", rate(ours["mib_s"]),
                          f"{rate(bare['mib_s'])}: {references.get(backend, 'the bare library')}",
                          sides["ratio"], at_least(0.9)))
        t.rows.append(Row(f"{label}: memory growth during the read",
                          f"+{ours['peak_rss_delta_mb']:.1f} MB (process {ours['peak_rss_mb']:.0f} MB)",
                          target=Target("<", 100, "MB", on_ratio=False), value=ours["peak_rss_delta_mb"]))
        for name, side in sides.items():
            if name not in ("cargohold", "bare") and isinstance(side, dict) and "mib_s" in side:
                t.rows.append(Row(f"{label}: download, second reference, MiB/s", rate(ours["mib_s"]),
                                  f"{rate(side['mib_s'])}: {name}", ours["mib_s"] / side["mib_s"]))
    return t


UPLOAD_REFERENCES = {
    ("local disk", "upload"): "Python file copy + fsync",
    ("local disk", "download"): "plain file read (page cache)",
    ("s3 (moto)", "upload"): "obstore `put_async`, multipart",
    ("s3 (moto)", "download"): "obstore `get_async` + `stream`",
}


def upload_table(f: dict[str, Any]) -> Table:
    t = Table(f"{f['size_mib']:,} MiB file through the API of a real `cargohold up` (httpx streaming the body and "
              f"the answer), median of {f['runs']} alternating runs; memory: the server's peak RSS.")
    ratio_target = float(f.get("ratio_target", 0.8))
    rss_target = float(f.get("rss_target_mb", 200))
    for backend, b in f["backends"].items():
        label = "S3 (moto)" if backend.startswith("s3") else backend
        for direction in ("upload", "download"):
            d = b[direction]
            ref = UPLOAD_REFERENCES.get((backend, direction), "the bare library")
            t.rows.append(Row(f"{label}: {direction}, MiB/s", rate(d["cargohold_mib_s"]),
                              f"{rate(d['bare_mib_s'])}: {ref}", d["ratio"], at_least(ratio_target)))
        steps = b.get("steps", {})
        curl = steps.get("download/cargohold via curl")
        if curl and "download/bare" in steps:
            ref = UPLOAD_REFERENCES.get((backend, "download"), "the bare library")
            t.rows.append(Row(f"{label}: download with curl as the client, MiB/s", rate(curl["mib_s"]),
                              f"{rate(steps['download/bare']['mib_s'])}: {ref}",
                              steps["download/bare"]["median_s"] / curl["median_s"]))
        peak = max(b[d]["server_peak_rss_mb"] for d in ("upload", "download"))
        t.rows.append(Row(f"{label}: server peak RSS", f"{peak:.0f} MB",
                          target=Target("<", rss_target, "MB", on_ratio=False), value=peak))
        if b.get("stopped_early"):
            t.notes.append(f"{label}: {b['stopped_early']}.")
    return t


def catalog_table(f: dict[str, Any]) -> Table:
    t = Table(f"{f['items']:,} items in one dataset (SQLite); a page of {f['page']} through the API of a real server "
              f"vs the same SQL through `sqlite3`, median of {f['runs']} requests.")
    for where, page in f["pages"].items():
        at = "in" if where == "middle" else "at"
        t.rows.append(Row(f"page of {f['page']} {at} the {where}, ms", ms(page["api_ms"]),
                          f"{ms(page['sql_ms'])}: `sqlite3`, same query", page["sql_ms"] / page["api_ms"]))
    t.rows.append(Row("last page / first page (a cursor stays flat)", f"{f['end_vs_start']:.2f}×",
                      target=Target("<", 2, on_ratio=False, label="< 2×"), value=f["end_vs_start"]))
    return t


def links_table(f: dict[str, Any]) -> Table:
    t = Table("A real server (SQLite catalog) with one connection to moto on 127.0.0.1; ratios are "
              "cargohold's time against the bare side's.")
    bulk = f.get("bulk")
    if bulk:
        n = bulk["n"]
        ours, bare = bulk["sides"]["cargohold"], bulk["sides"]["bare"]
        limit = 60.0 * n / 1_000_000
        rss = f", server RSS {ours['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in ours else ""
        t.rows.append(Row(f"{n:,} links, `verify=false`, one POST ({bulk['links_file_mb']:.0f} MB) until its answer",
                          f"{ours['median_s']:.1f} s ({ours['per_s']:,.0f} links/s){rss}",
                          f"{bare['median_s']:.1f} s ({bare['per_s']:,.0f} rows/s): `sqlite3` `executemany`",
                          bulk["ratio"], Target("<", limit, "s", on_ratio=False), ours["median_s"]))
        checks = bulk.get("checks", {})
        if checks.get("row_equal") is False:
            t.notes.append("Bulk: the server's last row differs from the bare row (see the benchmark's output).")
    verify = f.get("verify")
    if verify:
        n = verify["n"]
        ours, bare = verify["sides"]["cargohold"], verify["sides"]["bare"]
        target = Target(">=", 500, "links/s", on_ratio=False)
        t.rows.append(Row(f"{n:,} image links verified against S3 (moto), links/s", f"{ours['per_s']:,.0f}",
                          f"{bare['per_s']:,.0f}: obstore ranged GET + Pillow, 32 in flight", verify["ratio"], target,
                          ours["per_s"]))
        for label, ref in verify.get("references", {}).items():
            per_s = n / ref["seconds"]
            if label.startswith("cargohold"):
                t.rows.append(Row(f"{n:,} image links verified, `fs://` (the same JPEGs on local disk), links/s",
                                  f"{per_s:,.0f}", target=target, value=per_s))
            else:
                t.rows.append(Row(f"{n:,} image links verified against S3 (moto), links/s", f"{ours['per_s']:,.0f}",
                                  f"{per_s:,.0f}: {label.removeprefix('bare, ')}", ours["per_s"] / per_s))
        if bare["per_s"] < 500:
            t.notes.append(f"The bare side itself verifies {bare['per_s']:,.0f} objects/s against moto: moto, not "
                           "cargohold, caps the S3 rate under 500/s on this machine.")
        checks = verify.get("checks", {})
        if checks.get("wrong"):
            t.notes.append(f"Items check: {checks['wrong']} of {checks.get('sampled')} sampled items were wrong.")
    return t


def cache_table(f: dict[str, Any]) -> Table:
    serving = f["serving"]
    t = Table(f"One `cargohold up` on S3 (moto), content from its storage tier; wrk 1 thread, "
              f"{serving['connections']} connections, {serving['runs']} × {serving['duration_s']:g} s alternating"
              f"{', wrk on CPU 0 and the server on CPU 1' if serving.get('pinned') else ''}; signed URLs, as a "
              "browser's `<img src>`. Previews: 256 px JPEG q80 of 12 MP images (and a GIF).")
    serve_target = at_least(float(serving.get("target", 0.5)))
    for what, s in serving["targets"].items():
        label = "cached 100 KiB item" if what == "content" else f"cached 256 px preview ({s['bytes'] / 1024:.1f} KiB)"
        ref = s["nginx"]
        reference = f"{ref['rps']:,.0f} (p50 {ms(ref['p50_ms'])} ms): nginx from disk"
        if "cargohold" in s:
            ours = s["cargohold"]
            t.rows.append(Row(f"{label}, requests/s", f"{ours['rps']:,.0f} (p50 {ms(ours['p50_ms'])} ms)", reference,
                              s["ratio"], serve_target))
            errors = ours["errors"] + ref["errors"]
            if errors:
                t.notes.append(f"{label}: {errors} requests failed during the runs: that row is not valid.")
            if s.get("tier_hits") is not None:
                t.notes.append(f"{label}: {s['tier']} tier {s['tier_hits']:,} hits, {s['tier_misses']} misses "
                               f"for {ours['requests']:,} timed requests.")
        else:
            t.rows.append(Row(f"{label}, requests/s", f"not available: {s.get('cargohold_not_available', '')}",
                              reference, None, serve_target))
    names = f.get("images", {})
    lib = f["preview_library"]
    lib_target = at_least(float(lib.get("target", 0.9)))
    for name, row in lib["images"].items():
        label = names.get(name, {}).get("label", name)
        ours = ms(row["cargohold_ms"]) if "cargohold_ms" in row else row.get("cargohold_error", "n/a")
        bare = ms(row["bare_ms"]) if "bare_ms" in row else row.get("bare_error", "error")
        t.rows.append(Row(f"preview made in process, {label}, ms", ours,
                          f"{bare}: pyvips `thumbnail` + `jpegsave`", row.get("ratio"), lib_target))
    if "cargohold_not_available" in lib:
        t.notes.append(f"Preview generation: cargohold not available: {lib['cargohold_not_available']}")
    http = f["preview_http"]
    thumbor = f"thumbor {http['thumbor_version']}" if http.get("thumbor_version") else "thumbor"
    http_target = Target(">", float(http.get("target", 1.0)))
    for name, row in http["images"].items():
        label = names.get(name, {}).get("label", name)
        ours = ms(row["cargohold_ms"]) if "cargohold_ms" in row else row.get("cargohold_error", "n/a")
        theirs = ms(row["thumbor_ms"]) if "thumbor_ms" in row else row.get("thumbor_error", "not measured")
        gif = " (answers a GIF)" if row.get("thumbor_format") == "gif" else ""
        t.rows.append(Row(f"preview over HTTP on a miss, {label}, ms", ours, f"{theirs}: {thumbor}{gif}",
                          row.get("ratio"), http_target))
    for key in ("thumbor_not_available", "cargohold_not_available"):
        if http.get(key):
            t.notes.append(f"Previews over HTTP: {key.split('_')[0]} not available: {http[key]}")
    for part, what in ((lib, "made in process"), (http, "over HTTP")):
        ratios = [r["ratio"] for r in part["images"].values() if "ratio" in r]
        if part.get("geomean_ratio") and ratios:
            t.notes.append(f"Previews {what}: geometric mean of the ratios {part['geomean_ratio']:.2f}, lowest "
                           f"{min(ratios):.2f} ({len(ratios)} of {len(part['images'])} images compared).")
    return t


def migrate_table(f: dict[str, Any]) -> Table:
    ours, theirs = f["cargohold_mib_s"], f["rclone_mib_s"]
    runs = len(ours)
    rclone = str(f.get("rclone", "rclone")).replace("rclone v", "rclone ")
    t = Table(f"{f['objects']:,} objects ({f['bytes'] / MiB:,.0f} MiB) from own storage on local disk to moto, "
              f"`cargohold migrate --jobs {f['jobs']}` vs `rclone copy --transfers {f['jobs']} --checkers "
              f"{f['jobs']}`, {runs} alternating run{'s' if runs != 1 else ''}, median.")
    t.rows.append(Row("copy local disk → S3 (moto), MiB/s",
                      f"{statistics.median(ours):.1f} (runs {', '.join(f'{x:.1f}' for x in ours)})",
                      f"{statistics.median(theirs):.1f} (runs {', '.join(f'{x:.1f}' for x in theirs)}): {rclone}",
                      f["ratio"], at_least(1.0)))
    t.rows.append(Row("`cargohold migrate` peak RSS", f"{f['peak_rss'] / 1e6:.0f} MB"))
    return t


def catalog_copy_table(f: dict[str, Any]) -> Table:
    t = Table(f"An SQLite catalog of {f['items']:,} items into an empty PostgreSQL database (Debian's, on 127.0.0.1): "
              f"`cargohold catalog copy` vs psycopg's `COPY items FROM STDIN` fed by `sqlite3`, median of "
              f"{f['runs']} run{'s' if f['runs'] != 1 else ''}.")
    ours, bare = f["copy_s"], f["bare_s"]
    t.rows.append(Row("SQLite → PostgreSQL, rows/s", f"{f['items'] / ours:,.0f} ({ours:.2f} s)",
                      f"{f['items'] / bare:,.0f} ({bare:.2f} s): bare COPY, no checks", bare / ours, at_least(0.5)))
    return t


def front_table(f: dict[str, Any]) -> Table:
    t = Table("`deploy/nginx.conf` in front of one replica (`worker_processes 1`, as the reference), a 100 KiB item "
              "in its storage tier; wrk 1 thread, 32 connections, alternating runs, medians.")
    ref = f["nginx alone"]
    reference = f"{ref['rps']:,.0f} (p50 {ms(ref['p50_ms'])} / p99 {ms(ref['p99_ms'])} ms): nginx alone, same file"
    rows = {
        "front, signed URL": ("cached 100 KiB item through nginx, signed URL (nginx's cache), requests/s",
                              at_least(0.8)),
        "front, token": ("the same through nginx with a token (cargohold authorises, nginx sends it: "
                         "X-Accel-Redirect), requests/s", None),
    }
    for side, (label, target) in rows.items():
        if side in f:
            s = f[side]
            t.rows.append(Row(label, f"{s['rps']:,.0f} (p50 {ms(s['p50_ms'])} / p99 {ms(s['p99_ms'])} ms)", reference,
                              s["ratio"], target))
            if s.get("errors"):
                t.notes.append(f"{side}: {s['errors']} requests failed during the runs: that row is not valid.")
    return t


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    table: Callable[[dict[str, Any]], Table]
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


BENCHES: tuple[Bench, ...] = (
    Bench("storage", "Storage: streaming one object through the `Store` protocol", storage_table,
          quick=("--size-mb", "64")),
    Bench("upload", "Uploads and downloads through the API", upload_table, quick=("--size-mb", "256")),
    Bench("catalog", "Listing a large dataset page by page", catalog_table),
    Bench("links", "Links: bulk without verification, images verified", links_table,
          full=("--extra-references",), quick=("--quick", "--extra-references")),
    Bench("cache", "Cache and previews", cache_table, quick=("--quick",), tools=("wrk", "nginx")),
    Bench("migrate", "Migration: local disk to S3, against rclone", migrate_table,
          quick=("--runs", "1", "--small", "200", "--large", "1"), tools=("rclone",)),
    Bench("catalog_copy", "Catalog copy: SQLite to PostgreSQL", catalog_copy_table,
          quick=("--items", "50000", "--runs", "1")),
    Bench("front", "Behind nginx: cached content through the front vs nginx alone", front_table,
          quick=("--runs", "1", "--duration", "2"), tools=("wrk", "nginx")),
)
BY_NAME = {b.name: b for b in BENCHES}


# --- running -----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One benchmark's run: its figures (the JSON it wrote) or why there are none."""

    name: str
    command: list[str]
    """The command that reproduces it, as shown (no ``--json``)."""
    mode: str
    started: datetime
    seconds: float = 0.0
    figures: dict[str, Any] | None = None
    error: str | None = None
    load: tuple[float, float] | None = None
    """The 1-minute load average when it started and when it ended."""


@dataclass
class RunInfo:
    mode: str
    started: datetime
    seconds: float
    machine: dict[str, str]
    versions: dict[str, str | None]
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    commit: str = ""


def python_shown() -> str:
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return exe.relative_to(REPO).as_posix()
    return str(exe)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def have(tool: str) -> bool:
    return (nginx_binary() if tool == "nginx" else shutil.which(tool)) is not None


def plan(bench: Bench, quick: bool) -> list[str]:
    return [python_shown(), f"bench/{bench.name}.py", *(bench.quick if quick else bench.full)]


def _reason(lines: Sequence[str]) -> str:
    useful = [line.strip() for line in lines if line.strip()]
    return useful[-1][:400] if useful else "no output"


def _descendants(pid: int) -> list[int]:
    try:
        import psutil  # type: ignore[import-untyped,unused-ignore]

        return [int(p.pid) for p in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


def _stop(proc: subprocess.Popen[str], grace: float = 30.0) -> None:
    """SIGINT first (the benchmark's ``finally`` blocks stop the servers it started), then SIGTERM to what is left
    of the processes it started, by pid."""
    children = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pid in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)


def execute(command: list[str], timeout: float, prefix: str) -> tuple[int | None, list[str]]:
    """Runs ``command`` in the repository, its output streamed through; returns its exit code (None: timed out)
    and its last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=60)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, errors="replace")

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            print(f"{prefix}{line}", end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code: int | None = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        before = list(tail)  # what it was doing, not how it took the interrupt
        _stop(proc)
        reader.join(10)
        return None, before
    except BaseException:
        _stop(proc)
        raise
    reader.join(10)
    return code, list(tail)


def run_bench(bench: Bench, quick: bool, workdir: Path, timeout: float) -> Outcome:
    shown = plan(bench, quick)
    outcome = Outcome(bench.name, shown, "quick" if quick else "full", datetime.now(UTC))
    missing = [tool for tool in bench.tools if not have(tool)]
    if missing:
        outcome.error = f"not run: {', '.join(missing)} not installed (`make bench-tools` installs it)"
        return outcome
    out = workdir / f"{bench.name}.json"
    command = [sys.executable, str(BENCH_DIR / f"{bench.name}.py"), *shown[2:], "--json", str(out)]
    started, load = time.monotonic(), load_average()[0]
    try:
        code, tail = execute(command, timeout, f"[{bench.name}] ")
    except OSError as exc:
        outcome.error = f"not run: {type(exc).__name__}: {exc}"
        return outcome
    finally:
        outcome.seconds = time.monotonic() - started
        outcome.load = (load, load_average()[0])
    if code is None:
        outcome.error = f"timed out after {duration(timeout)}; last output: {_reason(tail)}"
    elif code != 0:
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        outcome.error = f"failed ({how}): {_reason(tail)}"
    elif not out.exists():
        outcome.error = f"finished but wrote no JSON; last output: {_reason(tail)}"
    else:
        try:
            figures = json.loads(out.read_text())
        except ValueError as exc:
            outcome.error = f"its JSON could not be read: {exc}"
        else:
            if isinstance(figures, dict):
                outcome.figures = figures
            else:
                outcome.error = "its JSON is not an object"
    return outcome


# --- the machine -------------------------------------------------------------------------------------------


def _output(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or "") + (done.stderr or "")
    return text.strip() or None


def _first(pattern: str, text: str | None) -> str | None:
    found = re.search(pattern, text or "")
    return found.group(1) if found else None


def machine() -> dict[str, str]:
    model = ""
    with contextlib.suppress(OSError):
        model = _first(r"(?m)^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text()) or ""
    memory = ""
    with contextlib.suppress(OSError):
        kb = _first(r"(?m)^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
        memory = f"{int(kb) / 1024 / 1024:.1f} GiB" if kb else ""
    return {
        "cpu": model.strip() or platform.processor() or platform.machine(),
        "cores": str(os.cpu_count() or "?"),
        "memory": memory or "?",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _dist(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    nginx = nginx_binary()
    thumbor_python = THUMBOR_VENV / "bin" / "python"
    return {
        "nginx": _first(r"nginx/(\S+)", _output([nginx, "-v"])) if nginx else None,
        "wrk": _first(r"wrk (?:debian/)?(\S+)", _output(["wrk", "--version"])) if shutil.which("wrk") else None,
        "rclone": _first(r"rclone v?(\S+)", _output(["rclone", "version"])) if shutil.which("rclone") else None,
        "thumbor": _output([str(thumbor_python), "-c", "import importlib.metadata as m; print(m.version('thumbor'))"])
        if thumbor_python.exists() else None,
        "moto": _dist("moto"),
        "libvips": _output([sys.executable, "-c", "import pyvips; print('.'.join(str(pyvips.version(i)) for i in "
                            "range(3)))"]),
        "obstore": _dist("obstore"),
        "SQLite": sqlite3.sqlite_version,
        "curl": _first(r"curl (\S+)", _output(["curl", "--version"])) if shutil.which("curl") else None,
    }


def commit() -> str:
    head = _output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if not head or " " in head:
        return ""
    dirty = _output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return f"{head} (with uncommitted changes)" if dirty else head


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


# --- the generated block -----------------------------------------------------------------------------------


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def section_body(bench: Bench, outcome: Outcome) -> tuple[str, int, int]:
    """The markdown of one benchmark, and how many of its targets were met out of how many."""
    took = f", took {duration(outcome.seconds)}" if outcome.seconds else ""
    if outcome.load is not None:
        took += f" (load average {outcome.load[0]:.2f} at its start, {outcome.load[1]:.2f} at its end)"
    lines = [f"### {bench.title}", "",
             f"`bench/{bench.name}.py`, {outcome.mode} run of {when(outcome.started)}{took}."]
    table = Table()
    if outcome.error is not None:
        table.rows.append(Row("the whole benchmark", outcome.error))
    elif outcome.figures is not None:
        try:
            table = bench.table(outcome.figures)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, statistics.StatisticsError) as exc:
            table = Table(rows=[Row("the whole benchmark",
                                    f"figures unreadable: {type(exc).__name__}: {exc} (see the benchmark's output)")])
    if table.about:
        lines[-1] += " " + table.about
    lines += ["", markdown_table(table.rows)]
    if table.notes:
        lines += ["", *[f"- {note}" for note in table.notes]]
    lines += ["", "Reproduce:", "", "```sh", shlex.join(outcome.command), "```"]
    verdicts = [row.met() for row in table.rows if row.target is not None]
    return "\n".join(lines), sum(1 for v in verdicts if v), len(verdicts)


def previous_sections(text: str) -> dict[str, str]:
    """The per-benchmark sections of an existing generated block, by name (kept when not run again)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return {}
    return {m.group(1): m.group(0) for m in SECTION.finditer(text, start, end)}


def render_block(info: RunInfo, outcomes: Sequence[Outcome], previous: dict[str, str] | None = None) -> str:
    """What goes between the markers: the run, the machine, then one section per benchmark (benchmarks not in
    ``outcomes`` keep their section from ``previous``, when there is one)."""
    previous = previous or {}
    ran = {o.name: o for o in outcomes}
    sections: list[str] = []
    summary: list[str] = ["| benchmark | run | took | targets met | status |", "| --- | --- | --- | --- | --- |"]
    met_total = counted_total = 0
    for bench in BENCHES:
        outcome = ran.get(bench.name)
        if outcome is not None:
            body, met, counted = section_body(bench, outcome)
            met_total += met
            counted_total += counted
            status = "failed" if outcome.error and not outcome.error.startswith("not run") else \
                "not run" if outcome.error else "ok"
            summary.append(f"| {bench.name} | {outcome.mode}, {when(outcome.started)} | {duration(outcome.seconds)} "
                           f"| {met} of {counted} | {status} |")
            sections.append(f"<!-- bench {bench.name}: begin -->\n{body}\n<!-- bench {bench.name}: end -->")
        elif bench.name in previous:
            summary.append(f"| {bench.name} | kept from an earlier run | | | see its section |")
            sections.append(previous[bench.name])
    machine_ = info.machine
    shown = ", ".join(f"{name} {version or 'not installed'}" for name, version in info.versions.items())
    load = ", ".join(f"{x:.2f}" for x in info.load_start), ", ".join(f"{x:.2f}" for x in info.load_end)
    cores = machine_.get("cores", "")
    busy = info.load_start[0] > 0.5 * (int(cores) if cores.isdigit() else 1)
    if info.mode.startswith("quick"):
        kind = (f"**Quick run** (`make bench-quick`: smaller sizes, fewer runs; indicative only) of "
                f"{when(info.started)}")
    else:
        kind = f"**Full run** (`make bench`: every benchmark at its defaults) of {when(info.started)}"
    if "only" in info.mode:
        kind += f" ({info.mode.split(',', 1)[1].strip()})"
    lines = [
        "## Latest run (generated by `make bench`)",
        "",
        f"{kind}, {duration(info.seconds)} in all. Everything between the `make bench` markers is rewritten by "
        "`bench/report.py`; the sections after it are written by hand.",
        "",
        f"- Machine: {machine_.get('cpu', '?')}, {machine_.get('cores', '?')} cores, {machine_.get('memory', '?')} "
        f"memory, {machine_.get('kernel', '?')}, Python {machine_.get('python', '?')}",
        f"- References: {shown}",
    ]
    if info.commit:
        lines.append(f"- cargohold: commit {info.commit}")
    lines.append(f"- Load average (1, 5, 15 min): {load[0]} at start, {load[1]} at end (the benchmarks' own load "
                 "included)" + ("; the machine was already busy at the start: other work shows in the figures"
                                if busy else ""))
    lines += [
        f"- Targets met: {met_total} of {counted_total} in this run",
        "",
        "Ratio: cargohold ÷ reference for rates, reference ÷ cargohold for times: above 1, cargohold is ahead. "
        "Benchmarks report; a missed target never fails the run. All again: `make bench` (or `make bench-quick`); "
        "one: `.venv/bin/python bench/report.py --only NAME` (this block) or the command under its table.",
        "",
        *summary,
    ]
    return "\n\n".join(["\n".join(lines), *sections])


def update_document(text: str, block: str) -> str:
    """``text`` with ``block`` between the markers; the markers go before the first ``## `` heading (after the
    intro) when missing. Everything outside the markers is kept byte for byte."""
    start = text.find(BEGIN)
    end = text.find(END, start + len(BEGIN)) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return text[: start + len(BEGIN)] + "\n" + block + "\n" + text[end:]
    heading = re.search(r"(?m)^## ", text)
    inserted = f"{BEGIN}\n{block}\n{END}\n"
    if heading is None:
        return text + ("" if text.endswith("\n") or not text else "\n") + ("\n" if text else "") + inserted
    return text[: heading.start()] + inserted + "\n" + text[heading.start():]


# --- main --------------------------------------------------------------------------------------------------


def chosen(text: str | None) -> list[Bench]:
    if not text:
        return list(BENCHES)
    names = [n.strip().removesuffix(".py") for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return [b for b in BENCHES if b.name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmarks: " + ", ".join(BY_NAME))
    parser.add_argument("--quick", action="store_true", help="each benchmark's small options: a few minutes in all")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per benchmark")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document to update (docs/PERFORMANCE.md)")
    args = parser.parse_args(argv)
    try:
        benches = chosen(args.only)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.dry_run:
        for bench in benches:
            missing = [tool for tool in bench.tools if not have(tool)]
            note = f"   # not run: {', '.join(missing)} missing" if missing else ""
            print(shlex.join([*plan(bench, args.quick), "--json", f"<tmp>/{bench.name}.json"]) + note)
        print(f"then the block between the markers of {args.doc} is rewritten")
        return 0
    mode = "quick" if args.quick else "full"
    if args.only:
        mode += ", only " + ", ".join(b.name for b in benches)
    started, clock = datetime.now(UTC), time.monotonic()
    load_start = load_average()
    info_machine, info_versions = machine(), versions()
    print(f"{mode} run of {len(benches)} benchmark(s) on {info_machine['cpu']}, {info_machine['cores']} cores; "
          f"load average {load_start[0]:.2f}", flush=True)
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="cargohold-bench-report-") as tmp:
        for bench in benches:
            print(f"\n=== {shlex.join(plan(bench, args.quick))}", flush=True)
            outcome = run_bench(bench, args.quick, Path(tmp), args.timeout)
            outcomes.append(outcome)
            print(f"=== {bench.name}: {'ok' if outcome.error is None else outcome.error} "
                  f"({duration(outcome.seconds)})", flush=True)
    info = RunInfo(mode, started, time.monotonic() - clock, info_machine, info_versions, load_start, load_average(),
                   commit())
    text = args.doc.read_bytes().decode() if args.doc.exists() else "# Performance\n"
    block = render_block(info, outcomes, previous_sections(text))
    args.doc.write_bytes(update_document(text, block).encode())
    print(f"\n{args.doc} updated ({mode} run, {duration(info.seconds)}):")
    for outcome in outcomes:
        print(f"  {outcome.name:<8} {duration(outcome.seconds):>12}  {outcome.error or 'ok'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
