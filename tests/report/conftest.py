"""Analyses shared by the report tests (built once per session)."""

from __future__ import annotations

import pytest

from analyzer import analyze
from tests.conftest import CAPTURES, public_capture
from tests.report.build import write_long_call, write_scenario


class Limited:
    """An Analysis seen with only some of its tables, as when a stage is not available."""

    def __init__(self, a, names) -> None:
        self._a = a
        self._names = sorted(names)

    @property
    def tables(self) -> list[str]:
        return self._names

    def __getattr__(self, name):
        if name in self._a.tables and name not in self._names:
            raise AttributeError(name)
        return getattr(self._a, name)


BASE_TABLES = ("stun", "dtls", "transactions", "allocations", "candidates", "sessions", "pairs", "summary")


@pytest.fixture(scope="session")
def scenario_path(tmp_path_factory):
    return write_scenario(tmp_path_factory.mktemp("scenario"))


@pytest.fixture(scope="session")
def scenario(scenario_path):
    return analyze(scenario_path)


@pytest.fixture(scope="session")
def loopback():
    return analyze(CAPTURES / "loopback-call" / "call.pcap")


@pytest.fixture(scope="session")
def ntop_stun():
    return analyze(public_capture("ntop_nDPI/stun.pcap"))


@pytest.fixture(scope="session")
def long_call(tmp_path_factory):
    return analyze(write_long_call(tmp_path_factory.mktemp("long")))
