"""The wheel+PAM broker under abuse: bad requests, idle connections, concurrent clients.

drivers/broker.py talks to /run/runas-broker.sock directly (as alice, in wheel, who
answers the password prompt so that a bad request gets as far as it can) and checks
after each abuse that a normal `runas -S` request still works.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.reliability.conftest import ALICE_PASSWORD, Figures
from tests.reliability.inside import run_driver
from tests.testbed.testbed import Testbed

NOT_IN_WHEEL = "runas: test is not in group wheel: the wheel+PAM path is for its members\n"
WRONG_PASSWORD = "runas: authentication failed: the password on stdin (-S) was wrong\n"
ONE_RUNAS_LINE = re.compile(r"runas: [^\n]+\n")


@pytest.fixture(scope="module")
def abuse(wheel_alice: Testbed) -> dict[str, Any]:
    """The abuse phase, run once for this module's tests."""
    return run_driver(
        wheel_alice, "broker", {"phase": "abuse", "password": ALICE_PASSWORD}, timeout=600
    )


def test_broker_keeps_serving_after_each_bad_request(
    tb: Testbed, abuse: dict[str, Any], figures: Figures
) -> None:
    for number, result in enumerate(abuse["abuses"]):
        served = "served" if result["health"] == [0, f"ok-{number}\n", ""] else "NOT served"
        figures(f"broker abuse '{result['name']}': {result['answer']}; next request {served}")
    failed = [
        result
        for number, result in enumerate(abuse["abuses"])
        if result["health"] != [0, f"ok-{number}\n", ""]
    ]
    assert failed == [], "the broker stopped serving normal requests after these abuses"
    hung = [result for result in abuse["abuses"] if "no answer" in result["answer"]]
    assert hung == [], "the broker neither answered nor closed the connection"


def test_broker_refuses_bad_requests_without_crashing(
    tb: Testbed, abuse: dict[str, Any], figures: Figures
) -> None:
    journal = tb.run(
        [
            "journalctl",
            "--unit=runas-broker@*",
            "--output=cat",
            f"--since=@{abuse['started_at']:.0f}",
        ]
    ).stdout
    crashes = re.findall(r"^(?:\w+\.)*(\w+(?:Error|Exception)): (.*)$", journal, re.MULTILINE)
    tracebacks = journal.count("Traceback (most recent call last)")
    figures(
        f"broker abuse: {len(abuse['abuses'])} bad requests, {tracebacks} broker processes "
        f"died with a traceback: {sorted(set(crashes))}"
    )
    assert tracebacks == 0, (
        f"{tracebacks} bad requests crashed their broker process (a traceback in the journal, "
        f"no answer to the client) instead of being refused: {sorted(set(crashes))}"
    )


def test_broker_serves_while_idle_connections_are_held(
    tb: Testbed, wheel_alice: Testbed, figures: Figures
) -> None:
    idle = run_driver(tb, "broker", {"phase": "idle", "password": ALICE_PASSWORD}, timeout=600)
    concurrent = idle["concurrent"]
    right = [[0, f"c-{i}\n", ""] for i in range(6)]
    denied = [[1, "", NOT_IN_WHEEL]] * 2 + [[1, "", WRONG_PASSWORD]] * 2
    figures(
        f"broker idle: {idle['idle_connections']} connections from test that send nothing held "
        f"{idle['broker_instances_held']} broker processes; meanwhile a request: "
        f"{idle['health_while_idle']}, concurrent clients: "
        f"{sum(r == e for r, e in zip(concurrent[:6], right, strict=True))}/6 authenticated ok, "
        f"{sum(r == e for r, e in zip(concurrent[6:], denied, strict=True))}/4 denied as they "
        f"must be (2 outside wheel, 2 wrong passwords)"
    )
    figures(
        f"broker idle: {idle['idle_still_open']} of {idle['idle_connections']} idle connections "
        f"still open after {idle['idle_seconds']:.1f} s (the broker told them "
        f"{idle['idle_told']})"
    )
    figures(
        f"broker idle: idle connections up to the socket's MaxConnections={idle['socket_limit']} "
        f"({idle['broker_instances_at_limit']} broker processes): alice's requests (pipe, pty, "
        f"long request) got {idle['clients_at_limit']}; after closing them, "
        f"{idle['instances_after_close']} broker processes left, a request: "
        f"{idle['health_after_close']}"
    )
    assert idle["health_while_idle"] == [0, "ok-idle\n", ""]
    assert concurrent[:6] == right
    assert concurrent[6:] == denied
    assert idle["idle_still_open"] == 0, "the broker keeps idle connections (and processes)"
    # A client turned away (the socket is full) still gets runas's one line and status 1.
    turned_away = [
        client
        for client in idle["clients_at_limit"]
        if client[0] != 0 and not (client[0] == 1 and ONE_RUNAS_LINE.fullmatch(client[2]))
    ]
    assert turned_away == [], "refused without runas's one-line error"
    assert idle["instances_after_close"] == 0
    assert idle["health_after_close"] == [0, "ok-after\n", ""]
