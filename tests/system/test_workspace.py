"""Workspace sync: ``cargohold files pull|push`` and ``cargohold workspace start``, against the real
server on local disk and on S3 (the ``api_server`` fixture), as a workspace on another machine would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pytest
from click.testing import CliRunner
from click.testing import Result as CliResult

import cargohold
from cargohold.cli import cli
from cargohold.sdk import sync_state
from cargohold.sdk.client import Client
from cargohold.sdk.sync import STATE_FILE, Sync

from ..support.api_server import RunningServer

KB = 1024
UNICODE = "ünïcode ø/naïve 🚀.txt"
FILES = {  # the team files under ws/, by their path below it
    "a.txt": b"alpha",
    "nested/deep/b.bin": os.urandom(300 * KB),
    UNICODE: "grüße".encode(),
    "empty.dat": b"",
}


@pytest.fixture
def client(api_server: RunningServer) -> Iterator[Client]:
    with cargohold.Client(api_server.url, api_server.token) as sdk:
        for rel, data in FILES.items():
            sdk.put_file("ws/" + rel, data)
        sdk.put_file("other/outside.txt", b"not under ws/")
        yield sdk


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cargohold", *args], env=cli_env(home, env), capture_output=True,
                          text=True, timeout=60)


def cli_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("STORAGE_", "SERVER_", "CARGOHOLD_", "JUPYTER_"))}
    return {**clean, "CARGOHOLD_HOME": str(home), "COLUMNS": "200", **(extra or {})}


def flags(server: RunningServer) -> tuple[str, ...]:
    return ("--url", server.url, "--token", server.token)


def files(home: Path, server: RunningServer, *args: str) -> CliResult:
    """``cargohold files ...`` in this process (quicker than a subprocess), against the real server."""
    env: dict[str, str | None] = {"CARGOHOLD_HOME": str(home), "CARGOHOLD_URL": None, "CARGOHOLD_TOKEN": None}
    return CliRunner().invoke(cli, ["files", *args, *flags(server)], env=env)


def team(client: Client, prefix: str = "") -> dict[str, tuple[str, str]]:
    """Every team file under ``prefix``: path -> (sha256, updated_at)."""
    return {f["path"]: (f["sha256"], f["updated_at"]) for f in client.files(prefix)}


def local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != STATE_FILE}


def ok(run: subprocess.CompletedProcess[str] | CliResult) -> str:
    code = run.returncode if isinstance(run, subprocess.CompletedProcess) else run.exit_code
    assert code == 0, run.stdout + run.stderr
    return run.stdout


def test_pull_then_push_move_only_what_changed(api_server: RunningServer, client: Client, tmp_path: Path) -> None:
    home, dest = tmp_path / "client-home", tmp_path / "work"

    first = ok(run_cli(home, "files", "pull", "ws/", str(dest), *flags(api_server)))
    assert "4 moved" in first and "0 unchanged" in first and "0 deleted" in first, first
    assert local_tree(dest) == FILES  # byte for byte; nothing from outside ws/
    assert (dest / "empty.dat").stat().st_size == 0
    state = json.loads((dest / STATE_FILE).read_text())
    assert set(state["hashes"]) <= set(FILES) and len(state["synced"]) == 1
    before = {rel: (dest / rel).stat() for rel in FILES}

    # Nothing changed on either side: nothing moves, no file is rewritten.
    second = ok(files(home, api_server, "pull", "/ws", str(dest)))
    assert "0 moved (0 bytes), 4 unchanged, 0 deleted, 0 failed" in second, second
    for rel, stat in before.items():
        after = (dest / rel).stat()
        assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns), rel

    # One local file changes: only it goes up; every other team file keeps its version.
    listed = team(client)
    (dest / "a.txt").write_bytes(b"alpha, edited")
    pushed = ok(files(home, api_server, "push", str(dest), "ws"))
    assert "1 moved (13 bytes), 3 unchanged, 0 deleted" in pushed, pushed
    now = team(client)
    assert [p for p in now if now[p] != listed[p]] == ["ws/a.txt"]
    assert now["ws/a.txt"][0] != listed["ws/a.txt"][0] and now["ws/a.txt"][1] > listed["ws/a.txt"][1]
    assert client.get_file("ws/a.txt", tmp_path / "check.txt").read_bytes() == b"alpha, edited"
    again = ok(files(home, api_server, "push", str(dest), "ws/"))
    assert "0 moved (0 bytes), 4 unchanged" in again, again

    # A pull brings back the server's version of a file changed here (the server's side is right).
    (dest / UNICODE).write_bytes("grüße, lokal".encode())
    client.put_file("ws/nested/new file.txt", b"from a colleague")
    third = ok(files(home, api_server, "pull", "ws/", str(dest)))
    assert "2 moved" in third and "3 unchanged" in third, third
    assert (dest / UNICODE).read_bytes() == FILES[UNICODE]
    assert (dest / "nested" / "new file.txt").read_bytes() == b"from a colleague"


def test_delete_dry_run_and_symlinks(api_server: RunningServer, client: Client, tmp_path: Path) -> None:
    home, dest = tmp_path / "client-home", tmp_path / "work"
    ok(files(home, api_server, "pull", "ws/", str(dest)))
    outside = tmp_path / "secret.txt"
    outside.write_text("stays on this machine")
    (dest / "leak.txt").symlink_to(outside)  # leads outside: never pushed
    (dest / "inside-link.txt").symlink_to(dest / "a.txt")  # leads inside: pushed as a file
    (dest / "new.txt").write_text("new here")
    (dest / "nested" / "deep" / "b.bin").unlink()
    listed = team(client)

    # --dry-run lists and changes nothing, on either side.
    dry = files(home, api_server, "push", str(dest), "ws/", "--delete", "--dry-run")
    out = ok(dry)
    assert "would upload new.txt (8 bytes)" in out and "would upload inside-link.txt" in out
    assert "would delete remote nested/deep/b.bin" in out and "leak.txt" not in out
    assert "skipped: leak.txt: a symlink that leads outside the local folder" in dry.stderr
    assert team(client) == listed
    dry_pull = ok(files(home, api_server, "pull", "ws/", str(dest), "--delete", "--dry-run"))
    assert "would delete local new.txt" in dry_pull and "would download nested/deep/b.bin" in dry_pull
    assert (dest / "new.txt").exists() and not (dest / "nested" / "deep" / "b.bin").exists()
    empty = tmp_path / "never-made"
    ok(files(home, api_server, "pull", "ws/", str(empty), "--dry-run"))
    assert not empty.exists()

    # push --delete: new files go up, the deleted one goes away remotely, nothing outside ws/ is touched.
    pushed = ok(files(home, api_server, "push", str(dest), "ws/", "--delete"))
    assert "2 moved" in pushed and "1 deleted" in pushed, pushed
    now = team(client)
    assert "ws/nested/deep/b.bin" not in now and "ws/leak.txt" not in now and "other/outside.txt" in now
    assert client.get_file("ws/inside-link.txt", tmp_path / "l.txt").read_bytes() == b"alpha"

    # pull --delete: local files the server does not have go, inside the folder only; empty folders too.
    client.delete_file("ws/new.txt")
    (dest / "nested" / "only-here" / "x.txt").parent.mkdir(parents=True)
    (dest / "nested" / "only-here" / "x.txt").write_text("local only")
    pulled = ok(files(home, api_server, "pull", "ws/", str(dest), "--delete"))
    assert "2 deleted" in pulled, pulled
    assert not (dest / "new.txt").exists() and not (dest / "nested" / "only-here").exists()
    assert (dest / "leak.txt").is_symlink() and outside.read_text() == "stays on this machine"

    # '..' is refused before anything is asked of the server.
    now = team(client)
    for args in (("pull", "ws/../other", str(dest)), ("push", str(dest), "../ws"), ("pull", "a/./b", str(dest))):
        refused = files(home, api_server, *args)
        assert refused.exit_code == 2 and "Invalid value for REMOTE_DIR" in refused.stderr, refused.stderr
    assert team(client) == now


def test_hash_cache_resumed_pulls_and_kept_edits(api_server: RunningServer, client: Client, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "work"
    big = os.urandom(3 * 1024 * KB + 7)
    client.put_file("ws/big.bin", big)
    # A pull interrupted midway left the first MB of big.bin: only the rest travels.
    (dest / "big.bin.part").parent.mkdir(parents=True)
    (dest / "big.bin.part").write_bytes(big[: 1024 * KB])
    # The files just written are older than the racy window here, so their hashes are kept at once.
    monkeypatch.setattr(sync_state, "RACY_NS", 0)
    result = Sync(client, dest, "ws").pull()
    assert sorted(result.moved) == sorted([*FILES, "big.bin"]) and not result.failed
    assert result.bytes == sum(map(len, FILES.values())) + len(big) - 1024 * KB
    assert (dest / "big.bin").read_bytes() == big and not (dest / "big.bin.part").exists()

    # A second run reads no file to hash it: the cache answers by (path, size, mtime_ns).
    again = Sync(client, dest, "ws/")
    assert again.push().moved == [] and again.state.hashed == 0
    (dest / "a.txt").write_bytes(b"beta!")  # same size, new mtime
    third = Sync(client, dest, "ws/")
    assert third.push().moved == ["a.txt"] and third.state.hashed == 1
    assert [p.name for p in dest.iterdir() if p.name.startswith(STATE_FILE)] == [STATE_FILE]  # no temp files left

    # A .part of other bytes is dropped after the check fails, and the file fetched whole.
    (dest / "big.bin").unlink()
    (dest / "big.bin.part").write_bytes(os.urandom(1024 * KB))
    got = Sync(client, dest, "ws/").pull()
    assert got.moved == ["big.bin"] and got.bytes == (len(big) - 1024 * KB) + len(big)
    assert (dest / "big.bin").read_bytes() == big

    # The workspace way keeps a local edit not yet pushed; the mirror way (files pull) replaces it.
    (dest / "empty.dat").write_bytes(b"unsaved work")
    kept = Sync(client, dest, "ws/").plan("pull", mode="workspace")
    assert kept.steps == [] and [rel for rel, _ in kept.kept] == ["empty.dat"]
    assert [s.rel for s in Sync(client, dest, "ws/").plan("pull").steps] == ["empty.dat"]


def test_a_file_written_while_it_is_pushed(api_server: RunningServer, client: Client, tmp_path: Path) -> None:
    work = tmp_path / "work"
    log = work / "train.log"
    log.parent.mkdir()
    log.write_bytes(b"epoch 1\n" * 200_000)  # 1.6 MB: more than one chunk
    size = log.stat().st_size

    def grow(n: int) -> None:  # the training appends while the upload reads
        with log.open("ab") as fh:
            fh.write(b"epoch 2\n")

    first = Sync(client, work, "runs/")
    result = first.run(first.plan("push"), meter=Growing(grow))
    assert result.moved == ["train.log"] and not result.failed
    assert [f["size"] for f in client.files("runs/")] == [size]  # the file as it was when opened
    assert Sync(client, work, "runs/").push().moved == ["train.log"]  # the next push sends the rest
    assert [f["size"] for f in client.files("runs/")] == [log.stat().st_size]

    def shrink(n: int) -> None:
        os.truncate(log, 10)

    third = Sync(client, work, "runs/")
    log.write_bytes(b"epoch 3\n" * 200_000)
    failed = third.run(third.plan("push"), meter=Growing(shrink))
    assert failed.moved == [] and failed.failed[0][0] == "train.log" and "shorter" in failed.failed[0][1]


class Growing:
    """A progress display that calls ``hook`` as bytes move, to change the file in flight."""

    def __init__(self, hook: Callable[[int], None]) -> None:
        self.hook = hook

    def file(self, name: str, size: int, done: int = 0) -> AbstractContextManager[Callable[[int], None]]:
        return nullcontext(self.hook)


def workspace_home(tmp_path: Path, pull: bool, sync: bool) -> Path:
    home = tmp_path / "workspace-home"  # the workspace's machine: its own instance home, its own settings
    home.mkdir(parents=True)
    (home / ".env").write_text(f"JUPYTER_DOWNLOAD_FILES_BEFORE_START={str(pull).lower()}\n"
                               f"STORAGE_JUPYTER_SYNC={str(sync).lower()}\n")
    return home


NOTEBOOK = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import httpx

    work = Path(sys.argv[1])
    api = httpx.Client(base_url=os.environ["API"], headers={"Authorization": "Bearer " + os.environ["TOKEN"]})
    assert (work / "a.txt").read_bytes() == b"alpha", "pulled before the start"
    assert (work / "nested" / "deep" / "b.bin").stat().st_size == 300 * 1024
    # A colleague changes a.txt on the server meanwhile; this workspace does not touch it.
    assert api.put("/files/ws/a.txt", content=b"alpha, by a colleague").status_code == 201
    (work / "during" / "model notes.md").parent.mkdir()
    (work / "during" / "model notes.md").write_text("written while running")
    deadline = time.monotonic() + 20
    while api.get("/files/ws/during/model notes.md").status_code != 200:  # a push while this runs
        assert time.monotonic() < deadline, "no push while the command ran"
        time.sleep(0.1)
    time.sleep(1.2)  # more pushes go by
    (work / "at-exit.txt").write_text("written last")
    sys.exit(3)
""")


def test_workspace_start_pulls_pushes_while_running_and_at_the_end_also_after_sigterm(
    api_server: RunningServer, client: Client, tmp_path: Path
) -> None:
    home, work = workspace_home(tmp_path, pull=True, sync=True), tmp_path / "work"
    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK)
    run = run_cli(home, "workspace", "start", str(work), "--remote", "ws/", "--every", "0.5", *flags(api_server),
                  "--", sys.executable, str(script), str(work),
                  env={"API": api_server.api, "TOKEN": api_server.token})
    assert run.returncode == 3, run.stdout + run.stderr
    assert "pulled ws/" in run.stderr and "pushed 1 file(s)" in run.stderr
    assert client.get_file("ws/during/model notes.md", tmp_path / "d.md").read_text() == "written while running"
    assert client.get_file("ws/at-exit.txt", tmp_path / "e.txt").read_text() == "written last"
    # The colleague's change was not put back by the workspace's older, untouched copy.
    assert client.get_file("ws/a.txt", tmp_path / "a.txt").read_bytes() == b"alpha, by a colleague"
    assert "left alone: a.txt: changed on the server since the last sync" in run.stderr

    # Only STORAGE_JUPYTER_SYNC: nothing pulled; a SIGTERM is passed on to CMD, then the last push.
    home, work = workspace_home(tmp_path / "second", pull=False, sync=True), tmp_path / "second" / "work"
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, time
        from pathlib import Path
        work = Path(sys.argv[1])
        def stop(signum, frame):
            (work / "saved-on-term.txt").write_text("bye")
            sys.exit(7)
        signal.signal(signal.SIGTERM, stop)
        (work / "ready").write_text("")
        time.sleep(60)
    """))
    process = subprocess.Popen(
        [sys.executable, "-m", "cargohold", "workspace", "start", str(work), "--remote", "ws", *flags(api_server),
         "--", sys.executable, str(script), str(work)],
        env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 20
    while not (work / "ready").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    assert not (work / "a.txt").exists()  # JUPYTER_DOWNLOAD_FILES_BEFORE_START=false: nothing pulled
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 7, out + err
    assert client.get_file("ws/saved-on-term.txt", tmp_path / "s.txt").read_text() == "bye"
    assert "ws/ready" in team(client, "ws/")


def test_workspace_start_with_both_settings_false_just_runs(tmp_path: Path) -> None:
    home = workspace_home(tmp_path, pull=False, sync=False)  # no server, no token: none is needed
    run = run_cli(home, "workspace", "start", str(tmp_path / "w"), "--", sys.executable, "-c",
                  "import sys; print('ran'); sys.exit(5)")
    assert run.returncode == 5 and run.stdout == "ran\n", run.stderr
    missing = run_cli(home, "workspace", "start", str(tmp_path / "w"), "--", "no-such-command-here")
    assert missing.returncode == 127 and "cannot run 'no-such-command-here'" in missing.stderr
    dotdot = run_cli(home, "files", "pull", "ws/..", str(tmp_path / "w"))  # refused before any request
    assert dotdot.returncode == 2 and "'ws/..' has a '..' component" in dotdot.stderr, dotdot.stderr
