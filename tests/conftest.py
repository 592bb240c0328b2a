"""Fixtures shared across the test suite."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from exporter.simulator import FakeClock, Scenario, Simulator, SimulatorServer


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """Undo what a test's ``setup_logging`` did to the root logger.

    Its handler writes to the stderr of that test, which pytest closes afterwards; left in place,
    every later log record would fail with "I/O operation on closed file".
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


# --- Simulator fixtures: a demo Codat account on a fake clock, served over real HTTP. ---


@dataclass
class RunningSimulator:
    """A served simulator: ``url`` for the client, ``sim`` to drive it, ``clock`` to move time."""

    url: str
    sim: Simulator
    clock: FakeClock
    server: SimulatorServer
    api_key: str = "demo"


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock at 2026-01-05 09:00 UTC that moves only when the test advances it."""
    return FakeClock()


@pytest.fixture
def simulator(fake_clock: FakeClock) -> Iterator[RunningSimulator]:
    """The demo scenario (seed 1) on the fake clock, served on a free loopback port; closed after."""
    sim = Simulator(Scenario.demo(seed=1), api_key="demo", clock=fake_clock)
    server = sim.serve(host="127.0.0.1", port=0)
    try:
        yield RunningSimulator(url=server.url, sim=sim, clock=fake_clock, server=server)
    finally:
        server.close()
