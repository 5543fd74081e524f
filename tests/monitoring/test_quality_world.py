"""End to end: the world's shoppers ranked by a model served over real HTTP, their clicks joined back as labels."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import yaml
from sklearn.metrics import roc_auc_score
from testsupport import register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core.clock import SimulatedClock
from yarnit.core.settings import Settings
from yarnit.monitoring import quality
from yarnit.monitoring.slo import parse_slo_file
from yarnit.serving import ServingOptions, read_prediction_log
from yarnit.storage import open_workspace
from yarnit.world import HttpRanker, World, WorldConfig, request_labels

WORLD = WorldConfig(seed=5, sessions_per_day=60, n_users=200)
SLOS = {"service": "shop", "slos": [
    {"name": "ctr-labels", "sli": "label_completeness", "model": "ctr", "objective": 90, "window": "7d",
     "params": {"label_delay": "2d"}}]}


def test_world_traffic_through_yarnit_serve_is_joined_with_its_clicks(tmp_path) -> None:
    clock = SimulatedClock(WORLD.start)  # the server's clock starts with the world's first day
    ws = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    try:
        (ws.home / "slos.yaml").write_text(yaml.safe_dump(SLOS))
        register_ctr(ws)
        # generous budgets: on a loaded machine a request past its deadline is shed (503), and this test is about
        # the label join, not speed (as in tests/e2e/test_monitoring_tour.py)
        app = create_app(ws, refresh_s=0.0, serving=ServingOptions(deadline_ms=60_000, max_queue_delay_ms=None))
        with BackgroundServer(app) as server:
            ranker = HttpRanker(server.url, "ctr", chunk=500, id_prefix="e2e")
            try:
                day = next(iter(World(WORLD, ranker=ranker).run(1)))
            finally:
                ranker.close()
        app.state.serving.close()  # flushes the log
        labels = request_labels(day.impressions, day.labels, unshown=ranker.unshown)
        clicks = labels[labels["kind"] == "click"]
        assert len(clicks) == len(day.impressions) and clicks["value"].sum() > 0
        n_unshown = int((labels["kind"] == "shown").sum())
        assert n_unshown == len(ranker.unshown) > 0

        clock.advance(timedelta(days=3))  # every click and no-click label has arrived
        path = tmp_path / "labels.parquet"
        labels.to_parquet(path)
        ingested = quality.ingest_labels(ws, path)
        assert ingested.stored == len(clicks) + n_unshown and ingested.invalid == ingested.duplicate == 0
        assert ingested.ignored_kind == int((~labels["kind"].isin(["click", "shown"])).sum())  # purchases, fraud
        run = quality.update(ws)
        assert run["this_run"]["labels_joined"] == len(clicks) and run["this_run"]["not_shown"] == n_unshown
        assert "early" not in run["this_run"] and "unknown" not in run["this_run"]

        # the oracle: the scores the log holds at (request id, index), against the world's click labels
        scores = {r["request_id"]: r["predictions"] for r in read_prediction_log(ws.home / "prediction_log")
                  if r.get("role") == "primary"}
        p = np.array([scores[rid][i] for rid, i in zip(clicks["request_id"], clicks["index"], strict=True)])
        y = clicks["value"].to_numpy()
        report = quality.quality_report(ws, "ctr", window_s=7 * 86400)
        (group,) = report["groups"]
        realized = group["realized"]
        assert realized["count"] == sum(len(v) for v in scores.values()) - n_unshown  # the shown candidates
        assert realized["labelled"] == len(clicks) and realized["positives"] == int(y.sum())
        assert abs(realized["auc"] - roc_auc_score(y, p)) <= realized["auc_bound"]
        assert group["pending"] == 0
        # every shown candidate got its label in time; the unshown ones are no events
        completeness = quality.for_workspace(ws, parse_slo_file(SLOS), clock=clock).counts(
            parse_slo_file(SLOS).slos[0], until_s=clock.now().timestamp())
        good, total = completeness.window(end_s=clock.now().timestamp(), window_s=7 * 86400)
        assert (good, total) == (len(clicks), realized["count"])
        assert report["estimate_history"] and report["estimate_history"][0]["estimated_auc"] is not None
    finally:
        ws.close()
