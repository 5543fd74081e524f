"""Feature view records on SQLite and PostgreSQL: versions, annotations, consumers, runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from yarnit.core import InvalidInput
from yarnit.features import DuplicateFeatureView, FeatureRegistry, FeatureView, FeatureViewNotFound, feature_view
from yarnit.registry import ArtifactFormat, ModelRegistry
from yarnit.storage import Workspace
from yarnit.storage.schema import audit_log


def _view(window_days: int = 7, owner: str = "ranking", description: str = "Clicks of a shopper.") -> FeatureView:
    @feature_view(entities={"user_id": "string"}, features={"clicks": "int64", "ctr": "float64"},
                  ttl=timedelta(days=1), sources=("impressions",), params={"window_days": window_days},
                  owner=owner, description=description)
    def user_clicks(window_days: int) -> str:
        return f"SELECT user_id, max(event_time) AS event_time, count(*) AS clicks, 0.0 AS ctr FROM impressions " \
               f"WHERE event_time > now() - INTERVAL {window_days} DAY GROUP BY user_id"

    return user_clicks


def test_a_changed_definition_is_a_new_version_and_the_old_one_stays(ws: Workspace) -> None:
    registry = FeatureRegistry(ws)
    (v1,) = registry.apply([_view()])
    assert (v1.number, v1.version) == (1, _view().version)
    assert registry.apply([_view()])[0].id == v1.id  # re-applying the same definition is a no-op
    (v2,) = registry.apply([_view(window_days=30)])
    assert v2.number == 2 and v2.version != v1.version
    assert [v.number for v in registry.versions("user_clicks")] == [1, 2]
    assert registry.get("user_clicks").number == 2
    assert registry.get("user_clicks", 1).view.params == {"window_days": 7}
    assert registry.get("user_clicks", 1).view == _view()  # stored definitions round-trip exactly
    assert [v.name for v in registry.list()] == ["user_clicks"]


def test_annotation_changes_are_audited_not_versioned(ws: Workspace) -> None:
    registry = FeatureRegistry(ws)
    registry.apply([_view()])
    (again,) = registry.apply([_view(owner="search", description="Clicks, by the search team.")], actor="alice")
    assert again.number == 1 and again.view.owner == "search"
    with ws.metadata.begin() as conn:
        actions = [(r.action, r.actor) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
    assert actions == [("feature_view.register", "cli"), ("feature_view.annotate", "alice")]


def test_unknown_views_and_duplicates_name_the_choices(ws: Workspace) -> None:
    registry = FeatureRegistry(ws)
    registry.apply([_view()])
    with pytest.raises(FeatureViewNotFound, match=r"There is no feature view 'users'. Registered views: "
                                                  r"user_clicks.*yarnit features list"):
        registry.get("users")
    with pytest.raises(FeatureViewNotFound, match=r"no version 9 of feature view 'user_clicks'"):
        registry.get("user_clicks", 9)
    with pytest.raises(DuplicateFeatureView, match=r"named 'user_clicks'"):
        registry.apply([_view(7), _view(30)])


def test_consumers_are_registered_or_read_from_model_signatures(ws: Workspace) -> None:
    registry = FeatureRegistry(ws)
    registry.apply([_view()])
    registry.add_consumer("user_clicks", "ranker", features=["clicks"])
    with pytest.raises(InvalidInput, match=r"Unknown feature 'views'.*clicks, ctr"):
        registry.add_consumer("user_clicks", "ranker", features=["views"])
    from sklearn.linear_model import LogisticRegression

    from yarnit.registry import dump_sklearn

    model = LogisticRegression().fit([[0], [1]], [0, 1])
    ModelRegistry(ws).register("recommender", dump_sklearn(model), ArtifactFormat.SKOPS,
                               signature={"inputs": {"x": "double"}, "features": ["user_clicks:ctr"]})
    consumers = registry.consumers("user_clicks")
    assert [(c.consumer, c.features, c.source) for c in consumers] == [
        ("ranker", ("clicks",), "registered"), ("recommender", ("ctr",), "signature")]
    assert registry.consumers("other") == []
