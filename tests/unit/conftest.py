"""Every LaunchPlan any unit test builds is also rendered both ways and held equal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runas_podman.core.model import LaunchPlan
from tests.unit.systemd_run_model import assert_same_unit


@pytest.fixture(autouse=True)
def every_plan_is_the_same_unit_both_ways(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    built: list[LaunchPlan] = []
    original = LaunchPlan.__post_init__

    def recording(self: LaunchPlan) -> None:
        original(self)
        built.append(self)

    monkeypatch.setattr(LaunchPlan, "__post_init__", recording)
    yield
    for plan in built:
        assert_same_unit(plan)
