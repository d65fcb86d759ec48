"""The local side of a workspace sync (sync.py): the folder scan, and the state file
``LOCAL_DIR/.cargohold-sync.json`` with its cache of local SHA-256s and the SHA-256s both sides had at the
last sync."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_FILE = ".cargohold-sync.json"
STATE_VERSION = 1
# A hash is only cached for a file last modified this long before it was read: a write within the same
# tick of a coarse file-system clock would otherwise go unseen (size and mtime unchanged).
RACY_NS = 2_000_000_000
HASH_CHUNK = 1024 * 1024


def is_state_file(name: str) -> bool:
    """The state file, or one of its temporary files: never synced."""
    return name == STATE_FILE or (name.startswith(STATE_FILE + ".") and name.endswith(".tmp"))


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def excluded(rel: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) or any(fnmatch.fnmatchcase(part, p) for part in rel.split("/"))
               for p in patterns)


@dataclass(frozen=True)
class LocalFile:
    rel: str
    path: Path
    size: int
    mtime_ns: int
    via_link: bool = False  # reached through a symlinked folder: never deleted by a pull


class SyncState:
    """``LOCAL_DIR/.cargohold-sync.json``: the hash cache and, per server and prefix, the last synced SHA-256s.

    A missing or unreadable file is an empty state: the cache only saves work, it decides nothing alone."""

    def __init__(self, root: Path, remote_key: str) -> None:
        self.path = root / STATE_FILE
        self.remote_key = remote_key
        self.hashes: dict[str, tuple[int, int, str]] = {}
        self.all_synced: dict[str, dict[str, str]] = {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") == STATE_VERSION:
                self.hashes = {rel: (int(v[0]), int(v[1]), str(v[2])) for rel, v in data["hashes"].items()}
                self.all_synced = {k: {rel: str(s) for rel, s in v.items()} for k, v in data["synced"].items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            pass
        self.synced = self.all_synced.setdefault(remote_key, {})
        self.hashed = 0  # files read to hash them (not answered from the cache)
        self._recent: dict[str, tuple[int, int, str]] = {}  # this plan's hashes, too fresh to keep
        self._saved = self._text()  # what the file holds: a run that changes nothing does not write it

    def sha_of(self, local: LocalFile) -> str:
        for known in (self.hashes.get(local.rel), self._recent.get(local.rel)):
            if known and known[:2] == (local.size, local.mtime_ns):
                return known[2]
        started = time.time_ns()
        sha = sha256_file(local.path)
        self.hashed += 1
        after = local.path.stat()
        if (after.st_size, after.st_mtime_ns) == (local.size, local.mtime_ns):
            self.remember(local.rel, local.size, local.mtime_ns, sha, started)
            self._recent[local.rel] = (local.size, local.mtime_ns, sha)
        return sha

    def new_plan(self) -> None:
        self._recent.clear()

    def remember(self, rel: str, size: int, mtime_ns: int, sha: str, observed_ns: int) -> None:
        """Cache ``sha`` for (rel, size, mtime_ns) as seen at ``observed_ns``, unless the file is too fresh."""
        if mtime_ns <= observed_ns - RACY_NS:
            self.hashes[rel] = (size, mtime_ns, sha)
        else:
            self.hashes.pop(rel, None)

    def keep_only(self, rels: Iterable[str]) -> None:
        keep = set(rels)
        self.hashes = {rel: v for rel, v in self.hashes.items() if rel in keep}

    def _text(self) -> str:
        data: dict[str, Any] = {
            "version": STATE_VERSION,
            "hashes": {rel: list(v) for rel, v in sorted(self.hashes.items())},
            "synced": {k: dict(sorted(v.items())) for k, v in sorted(self.all_synced.items()) if v},
        }
        return json.dumps(data, separators=(",", ":"))

    def save(self) -> None:
        text = self._text()
        if text == self._saved and self.path.is_file():
            return  # a workspace pushes every few seconds: no write when nothing changed
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=STATE_FILE + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._saved = text


def scan_local(root: Path, exclude: tuple[str, ...] = ()) -> tuple[dict[str, LocalFile], dict[str, str]]:
    """Every regular file under ``root`` by its POSIX path there, and what was left out, with why.

    Symlinks are followed when they lead to a place inside ``root`` and skipped when they lead
    outside it (or in a loop); state files and their temporary files are never listed."""
    files: dict[str, LocalFile] = {}
    skipped: dict[str, str] = {}
    if not root.is_dir():
        return files, skipped
    root_real = root.resolve()

    def walk(folder: Path, prefix: str, chain: tuple[Path, ...], via_link: bool) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped[prefix.rstrip("/") or "."] = f"cannot be listed: {exc.strerror or exc}"
            return
        for entry in entries:
            rel = prefix + entry.name
            if is_state_file(entry.name):  # at any depth: a folder synced on its own inside this one
                continue
            if excluded(rel, exclude):
                continue
            try:
                is_link = entry.is_symlink()
                real = Path(os.path.realpath(entry.path)) if is_link else None
                if real is not None and not within(real, root_real):
                    skipped[rel] = "a symlink that leads outside the local folder"
                    continue
                if entry.is_dir(follow_symlinks=True):
                    here = real or Path(os.path.realpath(entry.path))
                    if here in chain:
                        skipped[rel] = "a symlink loop"
                        continue
                    walk(Path(entry.path), rel + "/", (*chain, here), via_link or is_link)
                elif entry.is_file(follow_symlinks=True):
                    st = entry.stat(follow_symlinks=True)
                    files[rel] = LocalFile(rel, Path(entry.path), st.st_size, st.st_mtime_ns, via_link)
                elif is_link and not os.path.exists(entry.path):
                    skipped[rel] = "a broken symlink"
                else:
                    skipped[rel] = "not a regular file"
            except OSError as exc:
                skipped[rel] = f"cannot be read: {exc.strerror or exc}"

    walk(root, "", (root_real,), False)
    return files, skipped
