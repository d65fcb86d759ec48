"""The S3 endpoint against Ceph's s3-tests (third_party/s3-tests, vendored unmodified): the in-scope selection of
third_party/S3-CONFORMANCE.md (241 tests), run by the suite's own pytest from its own venv (``make s3-tools``)
against a real ``cargohold up``, and compared with conformance_known_failures.txt beside this file.

Strict both ways, as s3proxy's CI runs the same suite: a test of the selection that fails must be listed (with
its reason), and a listed test that passes fails this run too, so the list only ever shrinks to what is true.

Users: ``[s3 main]`` is an admin token's key pair; ``[s3 alt]`` and ``[s3 tenant]`` are key pairs of two write
tokens (not limited to datasets, so they may create buckets), the ordinary users S3's "another user" stands for.
No selected test checks what alt may do to main's buckets (ownership and ACLs are out of scope), but the suite's
setup and teardown of every test list and empty the buckets of all three, so all three must be real keys; and one
selected test (``..._not_expired_tenant``) makes and presigns with the tenant's.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..support.api import cli
from ..support.api_server import RunningServer

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(os.environ.get("S3TESTS_DIR") or ROOT / "third_party" / "s3-tests").resolve()
SELECTION = ROOT / "third_party"
VENV_PYTHON = ROOT / ".s3" / "s3tests-venv" / "bin" / "python"
KNOWN = Path(__file__).with_name("conformance_known_failures.txt")
FILES = ("s3tests/functional/test_s3.py", "s3tests/functional/test_headers.py")
SELECTED = 241
"""How many tests the selection holds at the pinned commit (S3-CONFORMANCE.md)."""
MOTO = 164
"""moto 5.2.5's figure on the same selection (S3-CONFORMANCE.md): what cargohold's endpoint is measured against."""
RUN_TIMEOUT = 1500


@dataclass
class Outcome:
    test: str
    """``test_s3.py::test_name``: the id conformance_known_failures.txt uses."""
    passed: bool
    why: str = ""
    """A failure's, error's or skip's first line."""


def known_failures(path: Path = KNOWN) -> dict[str, str]:
    """``{test id: reason}`` of the list: one id a line, then ``  # reason``; blank lines and ``#`` lines are
    comments."""
    known: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        test, sep, reason = line.partition("#")
        test, reason = test.strip(), reason.strip()
        if not sep or not reason or " " in test or "::" not in test:
            raise AssertionError(f"{path.name}:{number}: want 'test_file.py::test_name  # reason', got {line!r}")
        if test in known:
            raise AssertionError(f"{path.name}:{number}: {test} is listed twice")
        known[test] = reason
    return known


def outcomes(junit: Path) -> list[Outcome]:
    """Each test case of a junit XML report, by ``file.py::name``. A case with a failure, an error (a failing
    setup or teardown too) or a skip did not pass."""
    found: dict[str, Outcome] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        test = f"{module}.py::{case.get('name', '')}"
        bad = [child for child in case if child.tag in ("failure", "error", "skipped")]
        why = ""
        if bad:
            first = bad[0]
            lines = (first.get("message") or first.text or "").strip().splitlines()
            why = f"{first.tag}: {lines[0] if lines else '(no message)'}"[:300]
        previous = found.get(test)
        if previous is not None and not previous.passed:  # pytest writes a teardown error as a second case
            continue
        found[test] = Outcome(test, not bad, why)
    return list(found.values())


def s3_key(server: RunningServer, name: str, role: str) -> dict[str, str]:
    made: dict[str, str] = json.loads(cli(server, "token", "create", "--name", name, role, "--s3", "--json").stdout)
    return made


def conf(server: RunningServer, main: dict[str, str], alt: dict[str, str], tenant: dict[str, str]) -> str:
    def user(key: dict[str, str], who: str) -> str:
        return (f"display_name = {key['name']}\nuser_id = {key['name']}\nemail = {who}@example.com\n"
                f"access_key = {key['s3_access_key_id']}\nsecret_key = {key['s3_secret_access_key']}\n")

    unused = "display_name = unused\nuser_id = unused\nemail = unused@example.com\naccess_key = UNUSED\n" \
             "secret_key = unused\n"
    return (f"[DEFAULT]\nhost = 127.0.0.1\nport = {server.s3_port}\nis_secure = False\nssl_verify = False\n\n"
            "[fixtures]\nbucket prefix = cargohold-{random}-\n\n"
            f"[s3 main]\n{user(main, 'main')}api_name = default\n\n"
            f"[s3 alt]\n{user(alt, 'alt')}\n"
            f"[s3 tenant]\n{user(tenant, 'tenant')}tenant = tenant\n\n"
            f"[iam]\n{unused}\n[iam root]\n{unused}\n[iam alt root]\n{unused}")


def report(results: list[Outcome], known: dict[str, str]) -> tuple[list[str], str]:
    """``(problems, summary)``: what makes the run fail (each on its own line) and the figure."""
    by_test = {r.test: r for r in results}
    passed = [r for r in results if r.passed]
    unexpected = sorted((r for r in results if not r.passed and r.test not in known), key=lambda r: r.test)
    fixed = sorted(t for t in known if t in by_test and by_test[t].passed)
    stale = sorted(t for t in known if t not in by_test)
    problems: list[str] = []
    if len(results) != SELECTED:
        problems.append(f"the selection ran {len(results)} tests, not {SELECTED}: has the suite or the selection "
                        "changed (third_party/S3-CONFORMANCE.md)?")
    if unexpected:
        problems.append(f"{len(unexpected)} failing tests not in {KNOWN.name} (fix them, or list them with a "
                        "reason):")
        why, count = Counter(r.why for r in unexpected).most_common(1)[0]
        if count >= 10 and count * 2 > len(unexpected):
            problems.append(f"  {count} of them the same way, first fix that: {why}")
            if "setup" in why or "teardown" in why:
                problems.append("  (the suite's setup and teardown of each test list and empty every bucket: "
                                "ListBuckets, ListObjectVersions, DeleteObjects, DeleteBucket)")
        problems += [f"  + {r.test}  # {r.why}" for r in unexpected]
    if fixed:
        problems.append(f"{len(fixed)} tests listed in {KNOWN.name} now pass (take them off the list):")
        problems += [f"  - {t}  # {known[t]}" for t in fixed]
    if stale:
        problems.append(f"{len(stale)} tests listed in {KNOWN.name} are not in the selection (take them off):")
        problems += [f"  - {t}" for t in stale]
    failing_known = len([t for t in known if t in by_test and not by_test[t].passed])
    summary = f"{len(passed)} passed of {len(results)}, {failing_known} known failures (moto: {MOTO})"
    return problems, summary


@pytest.mark.timeout(RUN_TIMEOUT + 120)
@pytest.mark.reliability(kind="bad input", cases=SELECTED, what="S3 conformance: Ceph's s3-tests, the in-scope "
                         "selection of third_party/S3-CONFORMANCE.md (listing, get/put, ranges, conditionals, "
                         "multipart, copy, batch delete, checksums, presigned URLs, bad headers and SigV4), strict "
                         "against tests/s3/conformance_known_failures.txt")
def test_s3_conformance(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if not (SUITE / "s3tests" / "functional" / "test_s3.py").is_file():
        pytest.skip(f"no S3 conformance suite at {SUITE}: third_party/s3-tests is vendored in the repository "
                    "(or set S3TESTS_DIR to a checkout of github.com/ceph/s3-tests at the commit of its ORIGIN.md), "
                    "then `make s3-tools`")
    if not VENV_PYTHON.is_file():
        pytest.skip(f"no {VENV_PYTHON.relative_to(ROOT)}: `make s3-tools` makes the suite's own venv")
    known = known_failures()
    server = RunningServer(tmp_path / "home", {}).start()
    try:
        main = s3_key(server, "s3-main", "--admin")
        alt = s3_key(server, "s3-alt", "--write")
        tenant = s3_key(server, "s3-tenant", "--write")
        config = tmp_path / "s3tests.conf"
        config.write_text(conf(server, main, alt, tenant), encoding="utf-8")
        junit = tmp_path / "junit.xml"
        env = {k: v for k, v in os.environ.items()  # the suite's venv, and no one's AWS settings but the conf's
               if not k.startswith(("AWS_", "PYTEST_", "S3TEST", "PYTHONPATH", "VIRTUAL_ENV"))}
        env |= {"S3TEST_CONF": str(config), "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "1"}
        command = [str(VENV_PYTHON), "-m", "pytest", *FILES, "-p", "no:cacheprovider", "-q", "-rN", "--tb=line",
                   "-m", (SELECTION / "s3-tests-markers.txt").read_text().strip(),
                   "-k", (SELECTION / "s3-tests-names.txt").read_text().strip(), f"--junitxml={junit}"]
        run = subprocess.run(command, cwd=SUITE, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    finally:
        server.stop()
    if not junit.is_file():
        pytest.fail(f"s3-tests wrote no report (exit {run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
    problems, summary = report(outcomes(junit), known)
    request.node.user_properties.append(("reliability_result", summary))
    print(summary)
    if problems:
        pytest.fail("S3 conformance: " + summary + "\n" + "\n".join(problems) + f"\n(the server's log: {server.log})",
                    pytrace=False)
