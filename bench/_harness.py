"""What every benchmark under bench/ shares: servers, wrk, CPU pinning and sampling, timing, and its rows.

A benchmark measures cargohold and its reference side by side in one run, then ends with :func:`finish`:
its :class:`Table` (one :class:`Row` per figure: cargohold's, the reference's, the ratio, the target) is
printed and, with ``--json``, written beside the raw figures. bench/report.py renders those tables into
docs/PERFORMANCE.md without knowing any benchmark's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]
from obstore.store import S3Store

REPO = Path(__file__).resolve().parent.parent
# The servers come from tests/support: the benchmarks start them exactly as the tests do.
sys.path.insert(0, str(REPO))

from tests.support.api_server import RunningServer  # noqa: E402
from tests.support.nginx_front import nginx_binary  # noqa: E402
from tests.support.servers import Server, free_port  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
THUMBOR_VENV = REPO / ".bench" / "thumbor-venv"


def log(message: str) -> None:
    print(message, flush=True)


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


# --- targets, rows and tables -------------------------------------------------------------------------------


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
    """One measurement: cargohold's figure and its reference's, as shown, and what the target judges."""

    measurement: str
    figure: str
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
        return [self.measurement, self.figure, self.reference, self.shown_ratio(),
                "" if self.target is None else self.target.text(), shown]


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


@dataclass
class Table:
    """A benchmark's result: what was measured (``about``), its rows, notes, and the command that ran it."""

    about: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str = ""

    def markdown(self) -> str:
        lines = ["| measurement | cargohold | reference | ratio | target | met? |",
                 "| --- | --- | --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(cell(c) for c in row.cells()) + " |" for row in self.rows]
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines)

    def targets(self) -> tuple[int, int]:
        """How many targets were met, out of how many."""
        verdicts = [row.met() for row in self.rows if row.target is not None]
        return sum(1 for v in verdicts if v), len(verdicts)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Table:
        rows = [Row(**{**row, "target": Target(**row["target"]) if row["target"] else None}) for row in data["rows"]]
        return cls(str(data["about"]), rows, [str(note) for note in data["notes"]], str(data.get("command", "")))


# --- the command line ---------------------------------------------------------------------------------------


def python_shown() -> str:
    exe = Path(sys.executable)
    with contextlib.suppress(ValueError):
        return exe.relative_to(REPO).as_posix()
    return str(exe)


def reproduce(argv: Sequence[str]) -> str:
    """The command that runs a benchmark again as ``argv`` ran it, without ``--json`` (a temporary file)."""
    words: list[str] = []
    rest = iter(argv[1:])
    for word in rest:
        if word == "--json":
            next(rest, None)
        elif not word.startswith("--json="):
            words.append(word)
    script = Path(argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(REPO)
    return shlex.join([python_shown(), script.as_posix(), *words])


def main(parser: argparse.ArgumentParser, measure: Callable[[argparse.Namespace], dict[str, Any]],
         table: Callable[[dict[str, Any]], Table], report: Callable[[dict[str, Any]], None] | None = None,
         argv: Sequence[str] | None = None) -> None:
    """A benchmark's command line (``--json`` added): measures, prints its own details and its table; with
    ``--json``, writes the table and the figures (what bench/report.py reads)."""
    parser.add_argument("--json", type=Path, help="also write the table and the figures as JSON here")
    args = parser.parse_args(argv)
    figures = measure(args)
    if report is not None:
        report(figures)
    shown = table(figures)
    shown.command = shown.command or reproduce(sys.argv)
    print(f"\n{shown.markdown()}\n\nReproduce: {shown.command}")
    if args.json:
        out = {"table": shown.as_json(), "figures": figures}
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"figures written to {args.json}")


# --- timing -------------------------------------------------------------------------------------------------


def timed_ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1e3


def median_ms(action: Callable[[], object], runs: int) -> float:
    return statistics.median(timed_ms(action) for _ in range(runs))


def chunks(size: int) -> Iterator[bytes]:
    """``size`` deterministic bytes in 1 MiB chunks: one random block, rotated differently per chunk (so a
    store cannot deduplicate or compress them)."""
    block = random.Random(20261101).randbytes(MiB)
    for i, pos in enumerate(range(0, size, MiB)):
        k = (i * 4099) % MiB
        yield (block[k:] + block[:k])[: min(MiB, size - pos)]


# --- processes: CPU time, memory, pinning -------------------------------------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds, with those of finished children (curl run by this process counts)."""
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def pinnable() -> bool:
    return (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of the process and of its children onto ``cpus`` (threads made later inherit it)."""
    for proc in tree(pid):
        with contextlib.suppress(psutil.Error, OSError):
            for thread in proc.threads():
                os.sched_setaffinity(thread.id, cpus)


class PeakRss:
    """The highest RSS of a process (this one by default; with ``children``, its children's added), sampled on a
    thread every ``interval`` s inside the ``with`` block; ``baseline`` is its RSS when made."""

    def __init__(self, pid: int | None = None, interval: float = 0.02, children: bool = False) -> None:
        self._proc = psutil.Process(pid)
        self._children = children
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline = self.peak = self._rss()

    def _rss(self) -> int:
        total = 0
        with contextlib.suppress(psutil.Error):
            procs = [self._proc, *(self._proc.children(recursive=True) if self._children else [])]
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
        return int(total)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


class Measured:
    """The wall time of a ``with`` block, the CPU seconds each named process spent in it, and ``rss``'s peak."""

    def __init__(self, procs: dict[str, psutil.Process], rss: PeakRss | None = None) -> None:
        self.procs = procs
        self.rss = rss
        self.seconds = 0.0
        self.cpu: dict[str, float] = {}

    def __enter__(self) -> Measured:
        self._cpu0 = {name: cpu_seconds([proc]) for name, proc in self.procs.items()}
        if self.rss is not None:
            self.rss.__enter__()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
        if self.rss is not None:
            self.rss.__exit__()
        self.cpu = {name: cpu_seconds([proc]) - self._cpu0[name] for name, proc in self.procs.items()}

    def record(self, **extra: Any) -> dict[str, Any]:
        out = {"seconds": self.seconds, "cpu_s": self.cpu} | extra
        if self.rss is not None:
            out["peak_rss_mb"] = self.rss.peak / 1e6
        return out


def medians(records: list[dict[str, Any]], per: float) -> dict[str, Any]:
    """The runs of one side (:meth:`Measured.record`), summed up: median seconds and ``per`` per second."""
    seconds = [r["seconds"] for r in records]
    median = statistics.median(seconds)
    cpu = {name: statistics.median(r["cpu_s"][name] for r in records) for name in records[0]["cpu_s"]}
    out = {"median_s": median, "per_s": per / median, "runs_s": seconds, "cpu_s_median": cpu}
    if "peak_rss_mb" in records[0]:
        out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in records)
    return out


# --- servers ------------------------------------------------------------------------------------------------


class Service(Protocol):
    def start(self, timeout: float = ...) -> object: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=Service)


def started(stack: contextlib.ExitStack[Any], service: S, timeout: float = 60) -> S:
    """``service`` started, stopped when ``stack`` closes (the last started first), even if it fails to start."""
    stack.callback(service.stop)
    service.start(timeout)
    return service


def minio_env(endpoint: str, prefix: str) -> dict[str, str]:
    """A server's settings for own storage on moto (an S3 endpoint with moto's test keys)."""
    return {"STORAGE_PROVIDER": "minio", "STORAGE_ENDPOINT": endpoint, "STORAGE_ACCESS_KEY": "testing",
            "STORAGE_SECRET_KEY": "testing", "STORAGE_BUCKET_PREFIX": prefix}


def api_client(server: RunningServer, timeout: float = 60) -> httpx.Client:
    return httpx.Client(base_url=server.api, headers={"Authorization": f"Bearer {server.token}"},
                        timeout=httpx.Timeout(timeout, connect=10))


def bare_s3(bucket: str, endpoint: str, access_key: str = "testing", secret_key: str = "testing") -> S3Store:
    """The client ``cargohold.storage.s3.open_s3`` builds for a non-AWS endpoint, made directly: the bare side."""
    return S3Store(bucket, endpoint=endpoint, region="us-east-1", virtual_hosted_style_request=False,
                   access_key_id=access_key, secret_access_key=secret_key,
                   client_options={"allow_http": True, "connect_timeout": "5s", "timeout": "300s"},
                   retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30)})


def command_output(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return ((done.stdout or "") + (done.stderr or "")).strip() or None


def version(command: list[str], pattern: str) -> str | None:
    """The first group of ``pattern`` in what ``command`` prints; None when it is not installed."""
    found = re.search(pattern, command_output(command) or "") if shutil.which(command[0]) else None
    return found.group(1) if found else None


def nginx_version() -> str | None:
    binary = nginx_binary()
    return version([binary, "-v"], r"nginx/(\S+)") if binary else None


def wrk_version() -> str | None:
    return version(["wrk", "--version"], r"wrk (?:debian/)?(\S+)")


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush off;
    keepalive_requests 10000000;
    client_body_temp_path {tmp}/temp;
    proxy_temp_path {tmp}/temp;
    fastcgi_temp_path {tmp}/temp;
    uwsgi_temp_path {tmp}/temp;
    scgi_temp_path {tmp}/temp;
    default_type application/octet-stream;
    types {{ image/jpeg jpg; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def static_nginx(workdir: Path, root: Path) -> Server:
    """The reference web server: nginx (one worker, sendfile, no access log) serving ``root`` from disk, as a
    non-daemon child on a free loopback port; config, pid and error log under ``workdir``."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed: run `make bench-tools`")
    (workdir / "temp").mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=workdir, port=port, root=root))
    return Server("nginx", [binary, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")], port,
                  "/", workdir)


# --- wrk ----------------------------------------------------------------------------------------------------

CONNECTIONS = 32
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class WrkRun:
    rps: float
    requests: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    server_cpu_s: float = 0.0
    moto_cpu_s: float = 0.0


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, seconds: float, pin_cpu: int | None, script: Path | None = None) -> WrkRun:
    """One wrk run: 1 thread, 32 connections. ``script``: a wrk Lua script, e.g. one that sets a header."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
               *(["-s", str(script)] if script else []), url]
    if pin_cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(pin_cpu), *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if done is None or rps is None:
        raise RuntimeError(f"wrk printed what this bench cannot read:\n{out}")
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return WrkRun(float(rps.group(1)), int(done.group(1)), _ms(done.group(2) + done.group(3)) / 1e3,
                  _ms(p50.group(1)) if p50 else None, _ms(p99.group(1)) if p99 else None, errors)


@dataclass
class WrkSide:
    """One server of a wrk comparison: the URL, and the processes that are the server (pinned, CPU counted)."""

    name: str
    url: str
    pids: list[int]
    script: Path | None = None


def wrk_warm_up(sides: list[WrkSide], seconds: float, pinned: bool) -> None:
    """Per side a short untimed run, its servers pinned to CPU 1 first when ``pinned`` (wrk goes on CPU 0)."""
    for side in sides:
        for pid in side.pids if pinned else []:
            pin(pid, {1})
        wrk(side.url, min(1.0, seconds), 0 if pinned else None, side.script)


def wrk_rounds(sides: list[WrkSide], runs: int, seconds: float, pinned: bool,
               moto_pid: int | None = None) -> dict[str, list[WrkRun]]:
    """``runs`` rounds of one wrk run per side (A, B, A, B, ...), each with the server's and moto's CPU time."""
    wrk_cpu = 0 if pinned else None
    results: dict[str, list[WrkRun]] = {side.name: [] for side in sides}
    for run in range(1, runs + 1):
        for side in sides:
            server = [proc for pid in side.pids for proc in tree(pid)]
            moto_procs = tree(moto_pid) if moto_pid else []
            cpu0, moto0 = cpu_seconds(server), cpu_seconds(moto_procs)
            result = wrk(side.url, seconds, wrk_cpu, side.script)
            result.server_cpu_s = cpu_seconds(server) - cpu0
            result.moto_cpu_s = cpu_seconds(moto_procs) - moto0
            results[side.name].append(result)
            log(f"    run {run}/{runs} {side.name:<18} {result.rps:>9,.0f} req/s  p50 {result.p50_ms or 0:.2f} ms  "
                f"p99 {result.p99_ms or 0:.2f} ms  errors {result.errors}")
    return results


def summarize_wrk(runs: list[WrkRun]) -> dict[str, Any]:
    requests = sum(r.requests for r in runs)
    return {
        "rps": statistics.median(r.rps for r in runs),
        "p50_ms": statistics.median(r.p50_ms for r in runs if r.p50_ms is not None),
        "p99_ms": statistics.median(r.p99_ms for r in runs if r.p99_ms is not None),
        "errors": sum(r.errors for r in runs),
        "requests": requests,
        "server_cpu_us_per_request": 1e6 * sum(r.server_cpu_s for r in runs) / max(requests, 1),
        "server_cpu_share": sum(r.server_cpu_s for r in runs) / sum(r.seconds for r in runs),
        "moto_cpu_s": sum(r.moto_cpu_s for r in runs),
        "runs": [asdict(r) for r in runs],
    }


def wrk_figure(side: dict[str, Any], p99: bool = False) -> str:
    """A wrk side's summary as a table shows it: requests/s and latency."""
    latency = f"p50 {ms(side['p50_ms'])}" + (f" / p99 {ms(side['p99_ms'])}" if p99 else "")
    return f"{side['rps']:,.0f} ({latency} ms)"
