"""Feature view definitions: versions from code and parameters, computing, conforming, bad input."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from features.support import user_activity, user_rows

from yarnit.core import InvalidInput
from yarnit.features import (
    DuplicateFeatureView,
    EntityKeyError,
    FeatureComputeError,
    FeatureView,
    NaiveTimestamp,
    UnknownFeature,
    check_unique,
    conform,
    feature_view,
    load_definitions,
)

IMPRESSIONS = pd.DataFrame({
    "product_id": ["p1", "p1", "p2", "p2", "p2"],
    "clicked": [1, 0, 1, 1, 0],
    "event_time": pd.to_datetime(["2026-01-01T10:00", "2026-01-02T10:00", "2026-01-01T11:00",
                                  "2026-01-02T09:00", "2026-01-03T09:00"], utc=True),
})


def _ctr_view(days: int = 7, ttl: timedelta = timedelta(days=2), description: str = "", owner: str = "") -> FeatureView:
    @feature_view(entities={"product_id": "string"}, features={"impressions": "int64", "ctr": "float64"},
                  ttl=ttl, sources=("impressions",), params={"days": days}, description=description, owner=owner)
    def product_ctr(days: int) -> str:
        return ("SELECT product_id, CAST(date_trunc('day', event_time) AS TIMESTAMPTZ) + INTERVAL 1 DAY AS event_time, "
                "count(*) AS impressions, avg(clicked) AS ctr FROM impressions GROUP BY ALL")

    return product_ctr


def test_the_version_changes_with_code_params_or_ttl_but_not_with_annotations() -> None:
    base = _ctr_view()
    assert len(base.version) == 16 and base.version == _ctr_view().version
    assert _ctr_view(days=14).version != base.version
    assert _ctr_view(ttl=timedelta(days=3)).version != base.version
    assert _ctr_view(description="other words", owner="someone").version == base.version

    @feature_view(entities={"product_id": "string"}, features={"impressions": "int64", "ctr": "float64"},
                  ttl=timedelta(days=2), sources=("impressions",), params={"days": 7})
    def product_ctr(days: int) -> str:
        return "SELECT 1"  # same name, same params, different code

    assert product_ctr.version != base.version
    assert "def product_ctr(days: int) -> str:" in base.code and "@feature_view" not in base.code


def test_a_sql_view_runs_in_duckdb_over_its_sources() -> None:
    table = _ctr_view().compute({"impressions": IMPRESSIONS})
    frame = table.to_pandas().sort_values(["product_id", "event_time"]).reset_index(drop=True)
    assert frame["product_id"].tolist() == ["p1", "p1", "p2", "p2", "p2"]
    assert frame["impressions"].tolist() == [1, 1, 1, 1, 1]
    assert table.schema.field("event_time").type == pa.timestamp("us", tz="UTC")
    assert table.column_names == ["product_id", "event_time", "impressions", "ctr"]


def test_a_pandas_or_arrow_view_receives_its_sources_and_params() -> None:
    @feature_view(entities={"product_id": "string"}, features={"clicks": "int64"}, ttl=None,
                  sources=("impressions",), params={"scale": 2})
    def clicks(impressions: pd.DataFrame, scale: int) -> pd.DataFrame:
        out = impressions.groupby("product_id", as_index=False).agg(clicks=("clicked", "sum"),
                                                                    event_time=("event_time", "max"))
        out["clicks"] *= scale
        return out

    assert clicks.compute({"impressions": IMPRESSIONS}).column("clicks").to_pylist() == [2, 4]

    @feature_view(entities={"product_id": "string"}, features={"n": "int64"}, ttl=None, sources=("impressions",),
                  frames="arrow")
    def rows(impressions: pa.Table) -> pa.Table:
        assert isinstance(impressions, pa.Table)
        return impressions.append_column("n", pa.array([1] * impressions.num_rows))

    assert rows.compute({"impressions": IMPRESSIONS}).num_rows == 5


def test_declaration_errors_name_the_offending_item() -> None:
    with pytest.raises(InvalidInput, match=r"'float32'; valid types: int64, float64, bool, string"):
        feature_view(entities={"u": "string"}, features={"x": "float32"}, ttl=None, name="v")(lambda: None)
    with pytest.raises(InvalidInput, match=r"entity key column|entities column 'u' has type 'float64'"):
        feature_view(entities={"u": "float64"}, features={"x": "int64"}, ttl=None, name="v")(lambda: None)
    with pytest.raises(InvalidInput, match=r"ttl must be a positive timedelta"):
        feature_view(entities={"u": "string"}, features={"x": "int64"}, ttl=timedelta(0), name="v")(lambda: None)
    with pytest.raises(InvalidInput, match=r"column names \['u'\] are used twice"):
        feature_view(entities={"u": "string"}, features={"u": "int64"}, ttl=None, name="v")(lambda: None)

    def needs(table: pd.DataFrame) -> pd.DataFrame:
        return table

    with pytest.raises(InvalidInput, match=r"parameter 'table' of .*needs is neither a source"):
        feature_view(entities={"u": "string"}, features={"x": "int64"}, ttl=None, sources=("t",))(needs)
    with pytest.raises(InvalidInput, match=r"params \['window'\] are not parameters"):
        feature_view(entities={"u": "string"}, features={"x": "int64"}, ttl=None, sources=("table",),
                     params={"window": 3})(needs)
    with pytest.raises(InvalidInput, match=r"Feature view name 'Bad Name' is not valid"):
        feature_view(entities={"u": "string"}, features={"x": "int64"}, ttl=None, name="Bad Name")(needs)


def test_computed_rows_are_checked_against_the_declaration() -> None:
    good = user_rows(("u1", "2026-01-05T06:00Z", 1, 0.5, "ES", True))
    naive = good.assign(event_time=good["event_time"].dt.tz_localize(None))
    with pytest.raises(NaiveTimestamp, match=r"Event-time column 'event_time' of view 'user_activity' has no time "
                                             r"zone.*tz_localize\('UTC'\)"):
        conform(user_activity, naive)
    with pytest.raises(EntityKeyError, match=r"Entity key column 'user_id' of view 'user_activity' has type int64, "
                                             r"but the entity key is declared string"):
        conform(user_activity, good.assign(user_id=[7]))
    with pytest.raises(InvalidInput, match=r"missing \['ctr_7d'\]"):
        conform(user_activity, good.drop(columns=["ctr_7d"]))
    with pytest.raises(InvalidInput, match=r"feature 'country' is declared string but the computed column has type "
                                           r"int64"):
        conform(user_activity, good.assign(country=[3]))
    with pytest.raises(EntityKeyError, match=r"has 1 null values; every row needs a key"):
        conform(user_activity, good.assign(user_id=pd.Series([None], dtype="string")))
    table = conform(user_activity, good.assign(extra=1, clicks_7d=pd.Series([1], dtype="int32")))
    assert table.column_names == ["user_id", "event_time", "clicks_7d", "ctr_7d", "country", "is_new"]
    assert table.schema.field("clicks_7d").type == pa.int64()


def test_failures_in_view_code_keep_the_cause_and_say_where() -> None:
    @feature_view(entities={"u": "string"}, features={"x": "int64"}, ttl=None, sources=("t",))
    def broken(t: pd.DataFrame) -> pd.DataFrame:
        return t["no_such_column"]  # type: ignore[return-value]

    with pytest.raises(FeatureComputeError, match=r"broken@.* failed while computing.*KeyError.*test_definitions") as e:
        broken.compute({"t": pd.DataFrame({"u": ["a"]})})
    assert isinstance(e.value.__cause__, KeyError)
    with pytest.raises(InvalidInput, match=r"reads sources \['t'\]; missing: \['t'\]"):
        broken.compute({})
    with pytest.raises(FeatureComputeError, match=r"Catalog Error|does not exist"):
        _sql_view("SELECT * FROM nowhere").compute({"t": pd.DataFrame({"u": ["a"]})})


def _sql_view(sql: str) -> FeatureView:
    @feature_view(entities={"u": "string"}, features={"x": "int64"}, ttl=None, sources=("t",), params={"sql": sql})
    def query(sql: str) -> str:
        return sql

    return query


def test_two_views_with_one_name_are_refused_naming_both() -> None:
    assert check_unique([_ctr_view(), _ctr_view()]) == [_ctr_view()]  # the same definition twice is fine
    with pytest.raises(DuplicateFeatureView, match=r"Two feature views are named 'product_ctr': .*version "
                                                   r"[0-9a-f]{16}.* and .*version [0-9a-f]{16}"):
        check_unique([_ctr_view(days=7), _ctr_view(days=30)])


def test_definitions_load_from_a_file_and_duplicates_in_it_are_refused(tmp_path: Path) -> None:
    source = textwrap.dedent('''
        from datetime import timedelta
        from yarnit.features import feature_view

        @feature_view(entities={"u": "string"}, features={"x": "int64"}, ttl=timedelta(hours=1), sources=("t",))
        def first(t):
            return t
    ''')
    good = tmp_path / "features_ok.py"
    good.write_text(source)
    (view,) = load_definitions(good)
    assert view.name == "first" and view.fn is not None
    bad = tmp_path / "features_dup.py"
    bad.write_text(source + textwrap.dedent('''
        @feature_view(entities={"u": "string"}, features={"y": "int64"}, ttl=None, sources=("t",), name="first")
        def second(t):
            return t
    '''))
    with pytest.raises(DuplicateFeatureView, match=r"named 'first'"):
        load_definitions(bad)
    with pytest.raises(InvalidInput, match=r"does not exist"):
        load_definitions(tmp_path / "missing.py")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(InvalidInput, match=r"defines no feature views"):
        load_definitions(tmp_path / "empty.py")


def test_round_trip_through_a_dict_keeps_the_version_and_unknown_features_list_choices() -> None:
    view = _ctr_view(description="CTR", owner="ranking")
    again = FeatureView.from_dict(view.to_dict())
    assert again == view and again.version == view.version and again.fn is None
    with pytest.raises(InvalidInput, match=r"has no code to run"):
        again.compute({"impressions": IMPRESSIONS})
    with pytest.raises(UnknownFeature, match=r"Unknown feature 'clicks' in feature view 'product_ctr'. Valid "
                                             r"features: ctr, impressions"):
        view.feature("clicks")
    tampered = view.to_dict() | {"version": "0" * 16}
    with pytest.raises(InvalidInput, match=r"claims version 0000000000000000"):
        FeatureView.from_dict(tampered)
