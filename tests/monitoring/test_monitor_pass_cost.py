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


def test_unit_scores_agrees_with_the_plain_check() -> None:
    from yarnit.monitoring.quality import _unit_scores

    def plain(scores: list[object]) -> bool:
        return all(type(s) in (float, int) and 0.0 <= s <= 1.0 for s in scores)  # type: ignore[operator]

    cases: list[list[object]] = [[0.0, 1.0, 0.5], [0.2, float("nan")], [float("nan")], [1.0000001], [-0.0, 0.3],
                                 [-1e-300], [0.1, float("inf")], [0, 1, 0.5], [True, 0.5], [0.5, "0.5"],
                                 [0.5, None], [2], [10 ** 400], [0.25] * 300]
    for scores in cases:
        assert _unit_scores(scores) == plain(scores), scores
