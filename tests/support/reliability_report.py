"""docs/RELIABILITY.md, written from the test run: what was tried, how many cases, and the result.

A test takes part by its marker::

    @pytest.mark.reliability(kind="attack", what="SSRF via redirect", cases=12)

``kind`` is ``attack``, ``bad input``, ``fault``, ``crash`` or ``load``; ``what`` names what was tried (tests
with the same kind and ``what`` make one row, their cases added up); ``cases`` counts the requests, inputs
or faults the test tries. A test whose count is known only when it has run (Hypothesis, a fuzzer) adds
``("reliability_cases", n)`` to ``request.node.user_properties``, which then stands for the marker's. A test
that measured something (a load test's latency and throughput, what a crash left behind) adds
``("reliability_result", "text")``: when the row passed, its result reads ``passed: text`` (the texts of the
row's tests one per line); the terminal summary shows them too, in any run.

The document is rewritten at the end of a session only when every marked test of the suite ran: none
deselected (``-k``, ``-m``), none left out by naming files or tests, none cut short by ``-x``. A failed
or skipped test still counts as run; its row says so. A test file takes part when its text holds
``mark.reliability``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

MARKER = "reliability"
KINDS = ("attack", "bad input", "fault", "crash", "load")
TESTS = Path(__file__).resolve().parents[1]
DOC = TESTS.parent / "docs" / "RELIABILITY.md"

HEADER = """# Reliability: attacks, bad input, faults, crashes, load

Written by the test run (`tests/support/reliability_report.py`), not by hand: every test marked
`@pytest.mark.reliability(kind=..., what=..., cases=...)` is a row (tests with the same kind and `what`
share one), rewritten at the end of a `make test` in which all of them ran. **Cases** counts the
requests, inputs or faults tried; **result** is what the run found.

"""


@dataclass
class _Test:
    nodeid: str
    kind: str
    what: str
    cases: int
    outcome: str = ""
    reason: str = ""
    found: list[str] = field(default_factory=list)
    """``reliability_result`` texts: what the test measured or found, for the row's result."""


@dataclass
class _Row:
    kind: str
    what: str
    tests: list[_Test] = field(default_factory=list)

    @property
    def cases(self) -> int:
        return sum(t.cases for t in self.tests)

    @property
    def result(self) -> str:
        failed = [t for t in self.tests if t.outcome in ("failed", "error")]
        skipped = [t for t in self.tests if t.outcome == "skipped"]
        if failed:
            return f"**FAILED** ({len(failed)} of {len(self.tests)} tests)"
        xfailed = [t for t in self.tests if t.outcome == "xfailed"]
        if xfailed:
            known = "**known failure**: " + "; ".join(sorted({t.reason for t in xfailed}))
            others = [text for t in self.tests if t.outcome == "passed" for text in t.found]
            return known + ("<br>the other tests passed: " + "<br>".join(others) if others else "")
        if skipped and len(skipped) == len(self.tests):
            return "not tested: " + "; ".join(sorted({t.reason for t in skipped}))
        if skipped:
            return "passed; not tested: " + "; ".join(sorted({t.reason for t in skipped}))
        found = [text for t in self.tests for text in t.found]
        return "passed: " + "<br>".join(found) if found else "passed"

    @property
    def where(self) -> str:
        names = dict.fromkeys(t.nodeid.split("[", 1)[0] for t in self.tests)
        return "<br>".join(f"`{n}`" for n in names)


class ReliabilityReport:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tests: dict[str, _Test] = {}
        self.deselected: set[str] = set()
        self.files: set[Path] = set()
        self.written: str | None = None

    @pytest.hookimpl
    def pytest_itemcollected(self, item: pytest.Item) -> None:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            return
        kind, what, cases = marker.kwargs.get("kind"), marker.kwargs.get("what"), marker.kwargs.get("cases", 0)
        if kind not in KINDS or not isinstance(what, str) or not what or not isinstance(cases, int):
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.reliability needs kind= (one of {KINDS}), "
                                    "what= (text) and cases= (a whole number)")
        self.tests[item.nodeid] = _Test(item.nodeid, kind, " ".join(what.split()), cases)
        self.files.add(Path(str(item.path)).resolve())

    @pytest.hookimpl
    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected.update(i.nodeid for i in items if i.nodeid in self.tests)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test = self.tests.get(report.nodeid)
        if test is None:
            return
        for name, value in report.user_properties:
            if name == "reliability_cases" and isinstance(value, int):
                test.cases = value
            if name == "reliability_result" and isinstance(value, str):
                text = " ".join(value.split()).replace("|", "\\|")
                if text not in test.found:
                    test.found.append(text)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            test.outcome = "error" if report.when == "setup" and report.failed else report.outcome
            if hasattr(report, "wasxfail"):  # pytest.xfail(reason) at run time: a known failure, not a skip
                test.outcome, test.reason = "xfailed", str(report.wasxfail).removeprefix("reason: ")
            elif report.skipped and isinstance(report.longrepr, tuple):
                test.reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.when == "teardown" and report.failed:
            test.outcome = "error"

    def missing(self) -> list[str]:
        """Why the document cannot be written from this session: marked tests that did not run."""
        why = [f"deselected: {n}" for n in sorted(self.deselected)]
        why += [f"did not run: {t.nodeid}" for t in self.tests.values() if not t.outcome and t.nodeid not in
                self.deselected]
        for path in sorted(TESTS.rglob("test_*.py")):
            if path.resolve() not in self.files and "mark.reliability" in path.read_text(encoding="utf-8"):
                why.append(f"not collected: {path.relative_to(TESTS)}")
        return why

    def render(self) -> str:
        rows: dict[tuple[str, str], _Row] = {}
        for test in self.tests.values():
            rows.setdefault((test.kind, test.what), _Row(test.kind, test.what)).tests.append(test)
        ordered = sorted(rows.values(), key=lambda r: KINDS.index(r.kind))  # stable: collection order within
        lines = [HEADER.rstrip() + "\n", "| kind | what was tried | cases | result | tests |",
                 "| --- | --- | ---: | --- | --- |"]
        for row in ordered:
            what = row.what.replace("|", "\\|")
            lines.append(f"| {row.kind} | {what} | {row.cases:,} | {row.result} | {row.where} |")
        total = sum(r.cases for r in ordered)
        failed = sum(1 for r in ordered if "FAILED" in r.result)
        lines += ["", f"{len(ordered)} rows, {total:,} cases, from {len(self.tests)} tests; "
                  + (f"**{failed} rows failed**." if failed else "every row that ran passed.")]
        return "\n".join(lines) + "\n"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.tests or self.missing() or self.config.option.collectonly:
            return
        text = self.render()
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            DOC.write_text(text, encoding="utf-8")
        self.written = text

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.tests:
            return
        for test in self.tests.values():
            for text in test.found:
                terminalreporter.write_line(f"reliability: {test.nodeid}: {text}")
        if self.written is not None:
            terminalreporter.write_line(f"reliability: {DOC.relative_to(TESTS.parent)} written from "
                                        f"{len(self.tests)} marked tests")
            return
        missing = self.missing()
        terminalreporter.write_line(f"reliability: {DOC.relative_to(TESTS.parent)} left as it was: "
                                    f"{len(missing)} marked tests or files did not run (e.g. {missing[:1]})")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability(kind, what, cases): a row of docs/RELIABILITY.md (tests/support/reliability_report.py)")
    config.pluginmanager.register(ReliabilityReport(config), "cargohold-reliability-report")
