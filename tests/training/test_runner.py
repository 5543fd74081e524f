"""The runner on SQLite and PostgreSQL: records, cache, retries, timeouts, resume."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pandas as pd
import pytest

from yarnit.core import Conflict
from yarnit.storage import Workspace
from yarnit.training import (
    Pipeline,
    PipelineRunner,
    RunStore,
    Step,
    StepContext,
    StepFailed,
    TransientStepError,
    ValueKind,
)

CALLS: Counter[str] = Counter()


def load(ctx: StepContext) -> dict[str, Any]:
    CALLS["load"] += 1
    n = int(ctx.config["n"])
    ctx.count_rows(n)
    return {"table": pd.DataFrame({"x": range(n), "y": [i % 2 for i in range(n)]})}


def total(ctx: StepContext, table: pd.DataFrame) -> dict[str, Any]:
    CALLS["total"] += 1
    if ctx.config.get("fail_total"):
        raise ValueError("the sum exploded")
    ctx.metric("total", int(table["x"].sum()))
    return {"report": {"sum": int(table["x"].sum()) * int(ctx.config.get("factor", 1))}}


def publish(ctx: StepContext, report: dict[str, Any]) -> dict[str, Any]:
    CALLS["publish"] += 1
    return {"ref": {"published": report["sum"]}}


def make_pipeline(**step_options: Any) -> Pipeline:
    return Pipeline("numbers", [
        Step("load", load, outputs={"table": ValueKind.TABLE}),
        Step("total", total, inputs={"table": "load.table"}, outputs={"report": ValueKind.REPORT},
             **step_options),
        Step("publish", publish, inputs={"report": "total.report"}, outputs={"ref": ValueKind.REF}),
    ], config={"n": 10, "fail_total": False, "factor": 1})


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def test_a_run_records_every_step_with_its_measures(ws: Workspace) -> None:
    result = PipelineRunner(ws).run(make_pipeline(), config={"n": 100}, seed=3)
    assert result.run.state == "succeeded" and result.run.seed == 3
    assert result.value("publish", "ref") == {"published": 4950}
    steps = {s.step: s for s in result.steps}
    assert [steps[n].state for n in ("load", "total", "publish")] == ["succeeded"] * 3
    assert steps["load"].rows == 100 and steps["load"].rows_per_s and steps["load"].wall_s is not None
    assert steps["load"].peak_rss_mb and steps["load"].peak_rss_mb > 10
    assert result.run.metrics["total"] == 4950
    assert result.run.environment["packages"]["pandas"] == pd.__version__


def test_an_unchanged_rerun_does_no_work_and_a_config_change_reruns_only_what_it_touches(ws: Workspace) -> None:
    runner = PipelineRunner(ws)
    runner.run(make_pipeline())
    second = runner.run(make_pipeline())
    assert [s.state for s in second.steps] == ["cached"] * 3
    assert CALLS == Counter({"load": 1, "total": 1, "publish": 1})
    third = runner.run(make_pipeline(), config={"total.factor": 2})
    assert {s.step: s.state for s in third.steps} == {"load": "cached", "total": "succeeded",
                                                        "publish": "succeeded"}
    assert third.value("publish", "ref") == {"published": 90}
    runner.run(make_pipeline(), force=True)
    assert CALLS["load"] == 2


def test_transient_failures_are_retried_with_backoff(ws: Workspace) -> None:
    attempts = {"n": 0}

    def flaky(ctx: StepContext, table: pd.DataFrame) -> dict[str, Any]:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise TransientStepError("source busy")
        return {"report": {"sum": 1}}

    sleeps: list[float] = []
    pipeline = Pipeline("numbers", [
        Step("load", load, outputs={"table": ValueKind.TABLE}, config={"n": 3}),
        Step("total", flaky, inputs={"table": "load.table"}, outputs={"report": ValueKind.REPORT}, retries=2,
             backoff_s=0.5),
    ])
    result = PipelineRunner(ws, sleep=sleeps.append).run(pipeline)
    assert result.run.state == "succeeded" and sleeps == [0.5, 1.0]
    assert {s.step: s.attempts for s in result.steps}["total"] == 3


def test_a_failing_step_fails_the_run_with_its_reason_and_resume_starts_there(ws: Workspace) -> None:
    runner = PipelineRunner(ws)
    with pytest.raises(StepFailed, match=r"Step 'total' of run run_\w+ failed after 1 attempt\(s\): ValueError: "
                                         r"the sum exploded\. .*yarnit runs resume run_"):
        runner.run(make_pipeline(), config={"fail_total": True})
    failed = RunStore(ws).list()[0]
    assert failed.state == "failed" and "the sum exploded" in (failed.error or "")
    assert {s.step: s.state for s in RunStore(ws).steps(failed.id)} == {"load": "succeeded", "total": "failed"}
    # the cause is fixed (here: the step no longer fails), then the same run resumes from 'total'
    with ws.metadata.begin() as conn:
        from yarnit.storage.schema import runs

        conn.execute(runs.update().where(runs.c.id == failed.id).values(config={}))
    resumed = runner.resume(failed.id, make_pipeline())
    assert resumed.run.id == failed.id and resumed.run.state == "succeeded"
    assert CALLS["load"] == 1 and CALLS["total"] == 2 and CALLS["publish"] == 1
    with pytest.raises(Conflict, match="already succeeded"):
        runner.resume(failed.id, make_pipeline())


def test_a_step_past_its_timeout_fails(ws: Workspace) -> None:
    release = threading.Event()

    def stuck(ctx: StepContext, table: pd.DataFrame) -> dict[str, Any]:
        release.wait(5)
        return {"report": {}}

    pipeline = Pipeline("numbers", [
        Step("load", load, outputs={"table": ValueKind.TABLE}, config={"n": 3}),
        Step("total", stuck, inputs={"table": "load.table"}, outputs={"report": ValueKind.REPORT}, timeout_s=0.2),
    ])
    try:
        with pytest.raises(StepFailed, match="StepTimedOut: Step 'total' ran longer than its timeout of 0.2 s"):
            PipelineRunner(ws).run(pipeline)
    finally:
        release.set()


def test_a_step_returning_the_wrong_outputs_is_a_clear_failure(ws: Workspace) -> None:
    def wrong(ctx: StepContext) -> dict[str, Any]:
        return {"other": 1}

    pipeline = Pipeline("numbers", [Step("load", wrong, outputs={"table": ValueKind.TABLE})])
    with pytest.raises(StepFailed, match=r"must return a dict with exactly the outputs \['table'\]; got \['other'\]"):
        PipelineRunner(ws).run(pipeline)


def test_concurrent_runs_of_one_pipeline_are_safe(ws: Workspace) -> None:
    errors: list[BaseException] = []

    def go(factor: int) -> None:
        try:
            PipelineRunner(ws).run(make_pipeline(), config={"total.factor": factor})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(f,)) for f in (1, 2, 1, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r.state for r in RunStore(ws).list()] == ["succeeded"] * 4
