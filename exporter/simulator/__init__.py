"""A fake Codat Platform API over real HTTP, for tests, demos and benchmarks.

It serves the endpoints the exporter reads (companies, dataStatus, pull
operation history) and writes (refresh), with Codat's paging, query language,
errors, auth and rate limits, sync lifecycles that move on a clock, fault
knobs, and a signed webhook sender.
"""

from exporter.simulator.clock import Clock, FakeClock, SystemClock
from exporter.simulator.faults import Faults
from exporter.simulator.http import SimulatorServer
from exporter.simulator.scenario import Scenario, ScenarioError
from exporter.simulator.sim import RequestRecord, Simulator
from exporter.simulator.state import SimulatorError

__all__ = [
    "Clock",
    "FakeClock",
    "Faults",
    "RequestRecord",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "SimulatorError",
    "SimulatorServer",
    "SystemClock",
]
