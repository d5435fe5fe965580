"""A skipped test fails the run, unless it is marked `gpu`.

Every test is meant to run on a plain machine with the test dependencies installed: a skip means part of
the suite silently did not run (a data file or a package missing, a forgotten skip marker). So the run
ends with the failure exit status and a section naming each skipped test and why. Tests that need a GPU
declare it with `@pytest.mark.gpu` and may skip without one. An expected failure (xfail) is not a skip.
A module skipped as a whole at import fails the run too: its marks cannot be read from the report, so a
GPU module skips in its tests or fixtures instead.

conftest.py loads this plugin; a run of other tests can load it with `-p skip_policy` (tests/ on the path).
"""

from __future__ import annotations

import pytest


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The message a skip left in its report."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipPolicy:
    """Collects the skips that are not allowed and turns a passing run into a failing one."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self.skipped.append((report.nodeid, skip_reason(report)))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # a report's keywords carry the test's marks, also when it comes from a parallel worker (pytest-xdist)
        if report.skipped and not hasattr(report, "wasxfail") and "gpu" not in report.keywords:
            self.skipped.append((report.nodeid, skip_reason(report)))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.skipped:
            return
        terminalreporter.write_sep("=", f"{len(self.skipped)} skipped, which fails this run", red=True)
        for nodeid, reason in self.skipped:
            terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}")
        terminalreporter.write_line("Only tests marked `gpu` may skip; give the others what they need to run.")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipPolicy(), "skip-policy")
