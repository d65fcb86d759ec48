"""One performance report: runs every benchmark under bench/ and writes its figures into docs/PERFORMANCE.md.

Each benchmark (storage, upload, catalog, links, cache, migrate, catalog_copy, front, s3) runs as a subprocess with
``--json <tmp file>``, its output streamed through. Each writes its own rows there (bench/_harness.py's ``Table``:
measurement | cargohold | reference | ratio | target | met?, and the command that reproduces it); this file renders
them, knowing nothing of any benchmark's figures. Only the generated block of docs/PERFORMANCE.md, between ``<!-- make
bench: begin -->`` and ``<!-- make bench: end -->``, is rewritten (the markers are put after the intro paragraph the
first time); the hand-written analysis outside it is kept byte for byte. The block starts with the machine (CPU, cores,
memory, kernel, Python), the versions of the references (nginx, wrk, rclone, thumbor, moto, libvips, ...) and the load
average at start and end.

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
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _harness import (
    REPO,
    THUMBOR_VENV,
    Row,
    Table,
    command_output,
    duration,
    nginx_binary,
    nginx_version,
    python_shown,
    version,
    wrk_version,
)

BENCH_DIR = REPO / "bench"
DOC = REPO / "docs" / "PERFORMANCE.md"
BEGIN = "<!-- make bench: begin -->"
END = "<!-- make bench: end -->"
SECTION = re.compile(r"<!-- bench (\w+): begin -->\n.*?<!-- bench \1: end -->", re.DOTALL)
DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


BENCHES: tuple[Bench, ...] = (
    Bench("storage", "Storage: streaming one object through the `Store` protocol", quick=("--size-mb", "64")),
    Bench("upload", "Uploads and downloads through the API", quick=("--size-mb", "256")),
    Bench("catalog", "Listing a large dataset page by page"),
    Bench("links", "Links: bulk without verification, images verified",
          full=("--extra-references",), quick=("--quick", "--extra-references")),
    Bench("cache", "Cache and previews", quick=("--quick",), tools=("wrk", "nginx")),
    Bench("migrate", "Migration: local disk to S3, against rclone",
          quick=("--runs", "1", "--small", "200", "--large", "1"), tools=("rclone",)),
    Bench("catalog_copy", "Catalog copy: SQLite to PostgreSQL", quick=("--items", "50000", "--runs", "1")),
    Bench("front", "Behind nginx: cached content through the front vs nginx alone",
          quick=("--runs", "1", "--duration", "2"), tools=("wrk", "nginx")),
    Bench("s3", "S3 endpoint: GetObject, ListObjectsV2 over a large dataset, multipart PutObject",
          quick=("--quick",), tools=("wrk", "nginx")),
    Bench("video", "Videos: probing a linked video in place, random exact frames, a transcode for playback",
          quick=("--size-mb", "128", "--runs", "2", "--frame-video-frames", "300", "--transcode-seconds", "4")),
)
BY_NAME = {b.name: b for b in BENCHES}


# --- running -----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One benchmark's run: the JSON it wrote (its table and figures) or why there is none."""

    name: str
    command: list[str]
    """The command report.py ran, as shown (no ``--json``); the table's own command wins when there is one."""
    mode: str
    started: datetime
    seconds: float = 0.0
    output: dict[str, Any] | None = None
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
            output = json.loads(out.read_text())
        except ValueError as exc:
            outcome.error = f"its JSON could not be read: {exc}"
        else:
            if isinstance(output, dict):
                outcome.output = output
            else:
                outcome.error = "its JSON is not an object"
    return outcome


# --- the machine -------------------------------------------------------------------------------------------


def _first(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
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
    thumbor_python = THUMBOR_VENV / "bin" / "python"
    return {
        "nginx": nginx_version(),
        "wrk": wrk_version(),
        "rclone": version(["rclone", "version"], r"rclone v?(\S+)"),
        "thumbor": command_output([str(thumbor_python), "-c",
                                   "import importlib.metadata as m; print(m.version('thumbor'))"])
        if thumbor_python.exists() else None,
        "moto": _dist("moto"),
        "libvips": command_output([sys.executable, "-c", "import pyvips; print('.'.join(str(pyvips.version(i)) for i "
                                   "in range(3)))"]),
        "obstore": _dist("obstore"),
        "SQLite": sqlite3.sqlite_version,
        "curl": version(["curl", "--version"], r"curl (\S+)"),
    }


def commit() -> str:
    head = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if not head or " " in head:
        return ""
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
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
    elif outcome.output is not None:
        try:
            table = Table.from_json(outcome.output["table"])
        except (KeyError, TypeError, ValueError) as exc:
            table = Table(rows=[Row("the whole benchmark",
                                    f"figures unreadable: {type(exc).__name__}: {exc} (see the benchmark's output)")])
    if table.about:
        lines[-1] += " " + table.about
    lines += ["", table.markdown(), "", "Reproduce:", "", "```sh", table.command or shlex.join(outcome.command), "```"]
    return "\n".join(lines), *table.targets()


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
        print(f"  {outcome.name:<12} {duration(outcome.seconds):>12}  {outcome.error or 'ok'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
