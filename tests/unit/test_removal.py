"""What setup records for remove (manage.service_user.Record)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runas_podman.manage import service_user
from runas_podman.manage.service_user import Record


def test_a_record_round_trips_and_is_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_user, "RECORDS", tmp_path / "service-users")
    assert Record.read("svc") is None
    Record(created=True, subids="100000-165535").write("svc")
    assert Record.read("svc") == Record(True, "100000-165535")
    Record.forget("svc")
    Record.forget("svc")  # gone already: nothing to do
    assert Record.read("svc") is None


def test_a_damaged_record_counts_as_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_user, "RECORDS", tmp_path)
    (tmp_path / "svc").write_text("{not json")
    assert Record.read("svc") is None
