"""Workspace sync: a local folder and the team files under a path prefix, compared by size and SHA-256.

This is client code. A workspace (a notebook server, a training box) runs on another machine than the
cargohold server, so everything here goes through the SDK, ``cargohold.Client``, over the HTTP API:
the listing gives each team file's size and SHA-256, ``get_file`` fetches (checked, resumed from its
``.part``), ``put_file`` stores (checked), ``delete_file`` deletes. Nothing here opens the catalog or
a bucket. ``cargohold files pull|push`` and ``cargohold workspace start`` (cli/files.py) are built on it.

Two ways of deciding what moves:

- ``mirror`` (``files pull``, ``files push``): the source side is right. A file moves when it is
  missing on the other side or differs in size or SHA-256.
- ``workspace`` (``workspace start``): only what one side changed since the last sync moves, so a
  long-running workspace never puts back an old copy over a file a colleague changed meanwhile. When
  both sides changed a file, the workspace's copy wins and the file is reported as a conflict.

The state file ``LOCAL_DIR/.cargohold-sync.json`` (sync_state.py, written atomically) holds a cache of local
SHA-256s keyed by (path, size, mtime_ns), so unchanged files are not read again, and per server and
prefix the SHA-256 both sides had at the last sync, which the ``workspace`` way needs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from ..errors import BadInput, CargoholdError, ChangedWhileSent, ChecksumMismatch, NotFound, TooLarge, Unprocessable
from ..units import human_size
from .client import Client
from .sync_state import STATE_FILE, LocalFile, SyncState, excluded, is_state_file, scan_local, within

__all__ = ["STATE_FILE", "BackgroundPush", "Plan", "Result", "Sync", "SyncState", "remote_prefix", "scan_local"]

PART_SUFFIX = ".part"  # what Client.get_file writes before the rename
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Direction = Literal["pull", "push"]
Mode = Literal["mirror", "workspace"]
Action = Literal["download", "upload", "delete local", "delete remote"]


# Errors about one file, after which the others still go; any other error (no server, a bad token) ends the run.
PER_FILE_ERRORS = (ChecksumMismatch, ChangedWhileSent, BadInput, NotFound, TooLarge, Unprocessable, OSError)


class Meter(Protocol):
    """Progress display: ``file()`` is entered for each transfer and yields a bytes-moved callback."""

    def file(self, name: str, size: int, done: int = 0) -> AbstractContextManager[Callable[[int], None]]: ...


class _NoMeter:
    def file(self, name: str, size: int, done: int = 0) -> AbstractContextManager[Callable[[int], None]]:
        return nullcontext(lambda n: None)


def remote_prefix(remote_dir: str) -> str:
    """``notebooks/alice``, ``notebooks/alice/`` and ``/notebooks/alice`` all mean ``notebooks/alice/``;
    ``""`` and ``"/"`` mean every team file. ``.`` and ``..`` components are refused."""
    inner = remote_dir.strip().strip("/")
    if not inner:
        return ""
    parts = inner.split("/")
    if ".." in parts:
        raise BadInput(f"{remote_dir!r} has a '..' component: give a team-file folder, like notebooks/alice/")
    if "." in parts or "" in parts or "\\" in inner:
        raise BadInput(f"{remote_dir!r} is not a plain POSIX path (no '.', '//' or '\\'): "
                       "give a team-file folder, like notebooks/alice/")
    return inner + "/"


def check_relative(rel: str) -> str:
    """A path inside the synced folder: relative, POSIX, no ``.``/``..``/empty components."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise BadInput(f"{rel!r} is not a relative POSIX path without '..'; not synced")
    return rel


@dataclass(frozen=True)
class RemoteFile:
    rel: str  # the path below the prefix
    path: str  # the team-file path
    size: int
    sha256: str
    updated_at: str

    @property
    def mtime_ns(self) -> int | None:
        try:
            when = datetime.fromisoformat(self.updated_at)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return (when - _EPOCH) // timedelta(microseconds=1) * 1000  # exact: a float would round


@dataclass
class Step:
    action: Action
    rel: str
    size: int = 0
    local: LocalFile | None = None
    remote: RemoteFile | None = None


@dataclass
class Plan:
    direction: Direction
    steps: list[Step] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why): left alone both ways
    kept: list[tuple[str, str]] = field(default_factory=list)  # workspace way: the other side is newer
    conflicts: list[str] = field(default_factory=list)  # changed on both sides; this workspace's copy wins

    @property
    def transfers(self) -> list[Step]:
        return [s for s in self.steps if s.action in ("download", "upload")]

    @property
    def deletions(self) -> list[Step]:
        return [s for s in self.steps if s.action.startswith("delete")]

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.transfers)


@dataclass
class Result:
    direction: Direction
    plan: Plan
    moved: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0  # bytes that went over the network
    seconds: float = 0.0

    @property
    def unchanged(self) -> int:
        return self.plan.unchanged

    def counts(self) -> str:
        return (f"{len(self.moved)} moved ({human_size(self.bytes)}), {self.unchanged} unchanged, {len(self.deleted)} "
                f"deleted, {len(self.failed)} failed")


class Sync:
    """``local_dir`` and the team files under ``remote_dir``, over ``client``."""

    def __init__(self, client: Client, local_dir: str | os.PathLike[str], remote_dir: str,
                 exclude: Iterable[str] = ()) -> None:
        self.client = client
        self.root = Path(local_dir)
        self.prefix = remote_prefix(remote_dir)
        self.exclude = tuple(exclude)
        self.state = SyncState(self.root, f"{client.url}|{self.prefix}")

    # -- looking ----------------------------------------------------------------------------------

    def remote_files(self) -> tuple[dict[str, RemoteFile], dict[str, str]]:
        remotes: dict[str, RemoteFile] = {}
        skipped: dict[str, str] = {}
        for row in self.client.files(self.prefix, page_size=1000):
            path = str(row["path"])
            if not path.startswith(self.prefix):
                continue
            rel = path[len(self.prefix):]
            try:
                check_relative(rel)
            except BadInput as exc:
                skipped[rel] = exc.message
                continue
            if excluded(rel, self.exclude):
                continue
            if is_state_file(rel.rsplit("/", 1)[-1]):
                skipped[rel] = "the name of the sync state file"
                continue
            remotes[rel] = RemoteFile(rel, path, int(row["size"]), str(row["sha256"]), str(row.get("updated_at", "")))
        for rel in list(remotes):
            if rel.endswith(PART_SUFFIX) and rel.removesuffix(PART_SUFFIX) in remotes:
                skipped[rel] = f"clashes with the partial download of {rel.removesuffix(PART_SUFFIX)}"
                del remotes[rel]
        return remotes, skipped

    def _escapes(self, rel: str) -> bool:
        """True if writing ``rel`` would land outside the local folder (through a symlinked folder)."""
        root_real = self.root.resolve()
        probe = self.root.joinpath(*rel.split("/")).parent
        while not probe.exists() and probe != self.root and probe.parent != probe:
            probe = probe.parent
        return not within(probe.resolve(), root_real)

    # -- planning ---------------------------------------------------------------------------------

    def plan(self, direction: Direction, *, delete: bool = False, mode: Mode = "mirror") -> Plan:
        """What a pull or push would do now; nothing is changed (the hash cache is filled in memory)."""
        self.state.new_plan()
        remotes, remote_skipped = self.remote_files()
        locals_, local_skipped = scan_local(self.root, self.exclude)
        plan = Plan(direction)
        skipped = {**remote_skipped, **local_skipped}
        plan.skipped = sorted(skipped.items())
        synced = self.state.synced

        def partial(rel: str) -> bool:  # a .part left by an interrupted pull of a team file
            return rel.endswith(PART_SUFFIX) and rel.removesuffix(PART_SUFFIX) in remotes

        def same(local: LocalFile, remote: RemoteFile) -> bool:
            if local.size != remote.size:
                return False
            return self.state.sha_of(local) == remote.sha256

        if direction == "pull":
            if delete:
                for rel, gone in locals_.items():
                    if rel not in remotes and not gone.via_link and not partial(rel):
                        plan.steps.append(Step("delete local", rel, gone.size, local=gone))
            for rel, remote in remotes.items():
                local = locals_.get(rel)
                if rel in local_skipped:
                    continue
                if local is not None and same(local, remote):
                    plan.unchanged += 1
                    synced[rel] = remote.sha256
                    continue
                if local is not None and mode == "workspace" and rel in synced:
                    local_sha = self.state.sha_of(local)
                    if local_sha != synced[rel]:  # changed here since the last sync: it goes up, not away
                        plan.kept.append((rel, "changed here since the last sync; kept, to be pushed"))
                        if remote.sha256 != synced[rel]:
                            plan.conflicts.append(rel)
                        continue
                if self._escapes(rel):
                    plan.skipped.append((rel, "its folder is a symlink that leads outside the local folder"))
                    continue
                plan.steps.append(Step("download", rel, remote.size, local=local, remote=remote))
        else:
            for rel, mine in locals_.items():
                if partial(rel):
                    continue
                theirs = remotes.get(rel)
                if theirs is not None and same(mine, theirs):
                    plan.unchanged += 1
                    synced[rel] = theirs.sha256
                    continue
                if mode == "workspace":
                    base = synced.get(rel)
                    if base is not None and self.state.sha_of(mine) == base:  # not changed here since
                        why = "changed on the server" if theirs is not None else "deleted on the server"
                        plan.kept.append((rel, f"{why} since the last sync; not overwritten"))
                        continue
                    if theirs is not None and theirs.sha256 != base:  # changed on the server too
                        plan.conflicts.append(rel)
                plan.steps.append(Step("upload", rel, mine.size, local=mine, remote=theirs))
            if delete:
                for rel, extra in remotes.items():
                    if rel not in locals_ and rel not in local_skipped:
                        plan.steps.append(Step("delete remote", rel, extra.size, remote=extra))
        for rel in [r for r in synced if r not in remotes and r not in locals_]:
            del synced[rel]
        self.state.keep_only(locals_)
        return plan

    # -- doing ------------------------------------------------------------------------------------

    def run(self, plan: Plan, meter: Meter | None = None) -> Result:
        """Carry out ``plan``; one file's failure does not stop the others. The state file is saved at the end."""
        meter = meter or _NoMeter()
        result = Result(plan.direction, plan)
        started = time.monotonic()
        if plan.direction == "pull":
            self.root.mkdir(parents=True, exist_ok=True)
        # A pull clears deletions first (a deleted file may stand where a folder must go); a push
        # deletes only after its uploads.
        order = sorted(plan.steps, key=lambda s: s.action.startswith("delete") == (plan.direction == "push"))
        try:
            for step in order:
                try:
                    if step.action == "download":
                        result.bytes += self._download(step, meter)
                        result.moved.append(step.rel)
                    elif step.action == "upload":
                        result.bytes += self._upload(step, meter)
                        result.moved.append(step.rel)
                    elif step.action == "delete local":
                        self._delete_local(step)
                        result.deleted.append(step.rel)
                    else:
                        assert step.remote is not None
                        with suppress(NotFound):  # gone already: the wanted outcome
                            self.client.delete_file(step.remote.path)
                        self.state.synced.pop(step.rel, None)
                        result.deleted.append(step.rel)
                except PER_FILE_ERRORS as exc:
                    result.failed.append((step.rel, getattr(exc, "message", None) or str(exc)))
        finally:
            result.seconds = time.monotonic() - started
            self.state.save()
        return result

    def _download(self, step: Step, meter: Meter) -> int:
        remote = step.remote
        assert remote is not None
        dest = self.root.joinpath(*step.rel.split("/"))
        if dest.is_dir() and not dest.is_symlink():
            raise BadInput("a local folder of that name is in the way")
        part = dest.with_name(dest.name + PART_SUFFIX)
        have = part.stat().st_size if part.is_file() else 0
        moved = 0

        with meter.file(step.rel, remote.size, done=have if have <= remote.size else 0) as advance:
            def count(n: int) -> None:
                nonlocal moved
                moved += n
                advance(n)

            self.client.get_file(remote.path, dest, progress=count, sha256=remote.sha256)
        # The file carries the server's time, as `aws s3 sync` does; a later local edit always changes it.
        mtime_ns = remote.mtime_ns
        if mtime_ns is not None:
            os.utime(dest, ns=(time.time_ns(), mtime_ns))
        st = dest.stat()
        self.state.remember(step.rel, st.st_size, st.st_mtime_ns, remote.sha256, time.time_ns())
        self.state.synced[step.rel] = remote.sha256
        return moved

    def _upload(self, step: Step, meter: Meter) -> int:
        local = step.local
        assert local is not None
        before = local.path.stat()
        observed = time.time_ns()
        moved = 0

        with meter.file(step.rel, before.st_size) as advance:
            def count(n: int) -> None:
                nonlocal moved
                moved += n
                advance(n)

            try:
                stored = self.client.put_file(self.prefix + step.rel, local.path, progress=count)
            except CargoholdError as exc:
                # A file rewritten while it is read can break the request itself: say so, go on with the others.
                now = local.path.stat()
                if not isinstance(exc, PER_FILE_ERRORS) and (now.st_size, now.st_mtime_ns) != (before.st_size,
                                                                                               before.st_mtime_ns):
                    raise ChangedWhileSent("it changed while it was being sent; the next push sends it") from exc
                raise
        sha = str(stored["sha256"])
        after = local.path.stat()
        unchanged = (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        if unchanged and stored["size"] == after.st_size:  # the file did not change while it was sent
            self.state.remember(step.rel, after.st_size, after.st_mtime_ns, sha, observed)
        self.state.synced[step.rel] = sha
        return moved

    def _delete_local(self, step: Step) -> None:
        assert step.local is not None
        path = step.local.path
        root_real = self.root.resolve()
        if not within(Path(os.path.realpath(path.parent)), root_real):
            raise BadInput("its folder leads outside the local folder; not deleted")
        path.unlink()  # a symlink itself, never what it points to
        self.state.hashes.pop(step.rel, None)
        self.state.synced.pop(step.rel, None)
        folder = path.parent
        while folder != self.root and within(folder, self.root):
            try:
                folder.rmdir()  # only folders this deletion left empty
            except OSError:
                break
            folder = folder.parent

    # -- the two directions -----------------------------------------------------------------------

    def pull(self, *, delete: bool = False, mode: Mode = "mirror", meter: Meter | None = None) -> Result:
        return self.run(self.plan("pull", delete=delete, mode=mode), meter)

    def push(self, *, delete: bool = False, mode: Mode = "mirror", meter: Meter | None = None) -> Result:
        return self.run(self.plan("push", delete=delete, mode=mode), meter)


class BackgroundPush:
    """Pushes a workspace every ``every`` seconds in a thread, never two pushes at once.

    ``report`` gets each push's result, ``failed`` each error that stopped a push (the next one
    tries again). ``stop()`` ends the loop (waiting for a push under way), ``push()`` pushes once more."""

    def __init__(self, sync: Sync, every: float, report: Callable[[Result], None],
                 failed: Callable[[Exception], None]) -> None:
        self.sync = sync
        self.every = every
        self.report = report
        self.failed = failed
        self.pushes = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cargohold-workspace-push", daemon=True)

    def push(self) -> Result:
        with self._lock:
            result = self.sync.push(mode="workspace")
            self.pushes += 1
            return result

    def _loop(self) -> None:
        while not self._stopping.wait(self.every):
            try:
                self.report(self.push())
            except Exception as exc:  # the server is away, a file vanished...: the loop outlives any one push
                self.failed(exc)

    def start(self) -> BackgroundPush:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
