"""What the monitor pass keeps cheap (issue 18, h31) gives the same results as the plain computation."""

from __future__ import annotations

import dataclasses

from yarnit.monitoring.alerts import Alert


def _alert() -> Alert:
    evidence = {"at": "2024-01-01T00:00:00+00:00", "objective": 99.0, "budget_remaining": -0.5,
                "pairs": [{"long": {"window": "1h", "good": 1, "total": 2, "burn_rate": 50.0},
                           "windows": ("1h", "5m"), "firing": True}],
                "nested": {"list": [1, [2, 3], {"x": None}], "tuple": (1, (2.5, "a"))}}
    return Alert(id="alert-1", slo_id="svc/slo", service="svc", slo="slo", sli="serving_availability",
                 model="ctr", alert="page", alert_name="SloAlert", severity="page", state="firing",
                 started_at="2024-01-01T00:00:00+00:00", updated_at="2024-01-01T00:00:00+00:00", ended_at=None,
                 summary="burning", runbook="", evidence=evidence, acked_by="me", acked_at=None, ack_reason=None)


def test_alert_to_dict_equals_asdict_with_the_same_types() -> None:
    alert = _alert()
    fast, plain = alert.to_dict(), dataclasses.asdict(alert)
    assert fast == plain and list(fast) == list(plain)
    assert type(fast["evidence"]["nested"]["tuple"]) is tuple
    assert type(fast["evidence"]["pairs"][0]["windows"]) is tuple


def test_alert_to_dict_is_a_deep_copy() -> None:
    alert = _alert()
    out = alert.to_dict()
    out["evidence"]["pairs"][0]["long"]["good"] = 99
    out["evidence"]["nested"]["list"][1].append(4)
    assert alert.evidence["pairs"][0]["long"]["good"] == 1
    assert alert.evidence["nested"]["list"][1] == [2, 3]
