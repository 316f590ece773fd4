"""Pure parts of setup, doctor, the podman API and Quadlet handling."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from runas_podman.core.model import ServiceUser
from runas_podman.manage.doctor import Check, failed, render_json, render_text
from runas_podman.manage.podman_api import human_size, render_table
from runas_podman.manage.quadlet import generator_error, units_by_source
from runas_podman.manage.service_user import (
    SUBID_COUNT,
    SUBID_MIN,
    SubIdRange,
    free_subid_start,
    parse_subids,
    range_for,
)

TEST = ServiceUser("test", 1000, 1000, "test", "/home/test")


def test_parse_subids_and_lookup_by_name_or_uid() -> None:
    ranges = parse_subids("test:100000:65536\n# comment\nbad line\n1001:165536:65536\n")
    assert ranges == [SubIdRange("test", 100000, 65536), SubIdRange("1001", 165536, 65536)]
    assert range_for(ranges, TEST) == ranges[0]
    alice = ServiceUser("alice", 1001, 1001, "alice", "/home/alice")
    assert range_for(ranges, alice) == ranges[1]


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 200_000)), max_size=8))
def test_free_subid_range_overlaps_nothing(spans: list[tuple[int, int]]) -> None:
    ranges = [SubIdRange(f"u{i}", start, count) for i, (start, count) in enumerate(spans)]
    start = free_subid_start(ranges)
    assert start >= SUBID_MIN
    end = start + SUBID_COUNT - 1
    assert all(end < r.start or start > r.end for r in ranges)


def test_free_subid_range_packs_after_existing() -> None:
    ranges = [SubIdRange("test", 100000, 65536), SubIdRange("alice", 165536, 65536)]
    assert free_subid_start(ranges) == 231072
    assert free_subid_start([]) == SUBID_MIN


def test_doctor_rendering_and_status() -> None:
    checks = [Check("user", "ok", "test (uid 1000)"),
              Check("linger", "warn", "disabled", "loginctl enable-linger test"),
              Check("subuid", "fail", "none", "runas-podman setup -u test")]  # fmt: skip
    assert render_text(checks).splitlines() == [
        "ok   user: test (uid 1000)",
        "warn linger: disabled -> loginctl enable-linger test",
        "fail subuid: none -> runas-podman setup -u test",
    ]
    assert json.loads(render_json(checks))[2] == {
        "check": "subuid", "status": "fail", "detail": "none", "fix": "runas-podman setup -u test",
    }  # fmt: skip
    assert failed(checks) and not failed(checks[:2])


DRYRUN = """---web.service---
[X-Container]
Image=localhost/busybox
[Unit]
SourcePath=/tmp/x/web.container
---demo-pod.service---
[Unit]
SourcePath=/tmp/x/demo.pod
---demo-app.service---
[Unit]
BindsTo=demo-pod.service
SourcePath=/tmp/x/demo-app.container
"""


def test_units_by_source() -> None:
    assert units_by_source(DRYRUN) == {
        "web.container": ["web.service"],
        "demo.pod": ["demo-pod.service"],
        "demo-app.container": ["demo-app.service"],
    }


def test_generator_error_is_its_complaint() -> None:
    stderr = (
        "quadlet-generator[148]: Loading source unit file /tmp/x/bad.container\n"
        "quadlet-generator[148]: converting \"bad.container\": unsupported key 'Bogus' in group "
        "'Container' in /tmp/x/bad.container\n"
    )
    assert generator_error(stderr).startswith('converting "bad.container": unsupported key')


def test_table_and_sizes() -> None:
    assert render_table(["A", "LONGER"], [["x", "y"], ["wide cell", "z"]]).splitlines() == [
        "A          LONGER",
        "x          y",
        "wide cell  z",
    ]
    assert human_size(999) == "999 B" and human_size(2_170_000) == "2.17 MB"
