"""Helpers for incident tests: tiny real models, and emergency actions with real effects on the workspace.

``yarnit.continuous.actions`` (another part of issue 18) is not in this branch; these callables have its
signature (``fn(ws, model, *, actor, reason) -> dict``) and really move registry aliases.
"""

from __future__ import annotations

from typing import Any

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn

ROWS = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 5


def register(registry: ModelRegistry, name: str, *, dataset_ids: list[str] | None = None) -> Any:
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(ROWS, [1, 0] * 5)
    return registry.register(name, dump_sklearn(model), ArtifactFormat.SKOPS,
                             signature={"inputs": {"fiber": "string", "price": "double"}},
                             dataset_version_ids=dataset_ids or [])


def roll_back_action(calls: list[tuple[str, str, str]]) -> Any:
    """``roll_back``: production to the previous version, via the registry (what the real action does)."""

    def roll_back(ws: Any, model: str, *, actor: str, reason: str) -> dict[str, Any]:
        calls.append((model, actor, reason))
        event = ModelRegistry(ws, release_gate=None).roll_back(model, actor=actor, reason=reason)
        return {"action": "roll_back", "model": model, "from_version": event.from_version,
                "to_version": event.to_version}

    return roll_back


def failing_action(calls: list[str]) -> Any:
    def fall_back(ws: Any, model: str, *, actor: str, reason: str) -> dict[str, Any]:
        calls.append(model)
        raise RuntimeError("the fallback switch is unreachable")

    return fall_back


def make_alert(alert_id: str, at: Any, *, model: str | None = "ctr", alert: str = "page", slo: str = "ctr-availability",
               sli: str = "serving_availability", service: str = "yarnit-serving", state: str = "firing",
               ended_at: Any = None, long_bad: int = 60, short_bad: int = 20, per_minute: int = 20,
               period_bad: int = 60, period_total: int = 100_000, budget_remaining: float = 0.4) -> dict[str, Any]:
    """An alert record as the monitor's AlertStore keeps it (1h/5m page pair, 6h/30m ticket pair)."""
    def reading(window: str, bad: int, minutes: int) -> dict[str, Any]:
        total = per_minute * minutes
        return {"window": window, "good": total - bad, "total": total, "error_ratio": bad / total,
                "burn_rate": bad / total / 0.001}

    evidence = {"at": at.isoformat(), "objective": 0.999, "window": "30d", "state": alert,
                "budget_remaining": budget_remaining,
                "period": {"window": "30d", "good": period_total - period_bad, "total": period_total,
                           "error_ratio": period_bad / period_total, "burn_rate": None},
                "no_data_window": reading("1h", 0, 60),
                "pairs": [{"severity": "page", "long": reading("1h", long_bad, 60), "short": reading("5m", short_bad, 5),
                           "burn_rate_threshold": 14.4, "firing": alert == "page", "guarded": False},
                          {"severity": "ticket", "long": reading("6h", long_bad, 360),
                           "short": reading("30m", short_bad, 30), "burn_rate_threshold": 6.0,
                           "firing": alert == "ticket", "guarded": False}]}
    return {"id": alert_id, "slo_id": f"{service}-{slo}", "service": service, "slo": slo, "sli": sli, "model": model,
            "alert": alert, "alert_name": "CtrAvailabilityErrorBudgetBurn", "severity": "ticket" if alert == "no_data"
            else alert, "state": state, "started_at": at.isoformat(), "updated_at": at.isoformat(),
            "ended_at": ended_at.isoformat() if ended_at is not None else None, "summary": "ctr availability burns",
            "runbook": "https://runbooks.example/ctr", "evidence": evidence}
