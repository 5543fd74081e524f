"""Restricted columns (book CH4-R3) through the Python API: compliant by default, raw only with the role, audited."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest

from yarnit.access import Principal, RestrictedColumn, RestrictedReads, Tokens
from yarnit.core import SimulatedClock
from yarnit.core.errors import Forbidden, InvalidInput
from yarnit.data import DatasetSchema, SchemaError
from yarnit.data.restricted import read_compliant
from yarnit.evaluation.fairness import read_evaluation_frame
from yarnit.features import FeatureStore, feature_view
from yarnit.storage import Workspace

from testsupport import SHOPPERS_SCHEMA, ingest_shoppers


def test_schema_round_trips_restricted_columns_and_their_compliant_transforms() -> None:
    schema = DatasetSchema.from_yaml(SHOPPERS_SCHEMA)
    restricted = schema.restricted_columns
    assert sorted(restricted) == ["age", "country", "income"]
    assert restricted["age"].bucket == (18, 25, 35, 50, 65) and restricted["age"].output == "age_band"
    assert restricted["income"].output is None
    again = DatasetSchema.from_dict(schema.to_dict())
    assert again.restricted_columns == restricted and again.content_sha256() == schema.content_sha256()


@pytest.mark.parametrize(("column", "message"), [
    ("{type: string, restricted: {bucket: [1, 2], as: b}}", "needs a numeric column"),
    ("{type: int64, restricted: {bucket: [5, 2], as: b}}", "increasing boundaries"),
    ("{type: int64, restricted: {bucket: [1, 2]}}", "needs 'as: NEW_COLUMN'"),
    ("{type: int64, restricted: {bucket: [1], map: {a: b}, as: b}}", "exactly one compliant transform"),
    ("{type: int64, restricted: {bucket: [1], as: x}}", "'x', which is already a declared column"),
    ("{type: int64, restricted: {bucket: [1], as: b, bukket: 1}}", "did you mean 'bucket'"),
])
def test_a_bad_restriction_names_the_line_and_the_fix(column: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        DatasetSchema.from_yaml(f"columns:\n  x: {{type: int64}}\n  age: {column}\n")


def test_consumers_see_only_compliant_outputs_never_the_raw_column(sqlite_ws: Workspace) -> None:
    version = ingest_shoppers(sqlite_ws)
    table = read_compliant(sqlite_ws, version)
    assert "age" not in table.column_names and "country" not in table.column_names
    assert "income" not in table.column_names  # restricted without a transform: not readable at all this way
    assert table.column("age_band").to_pylist() == ["<18", "25-35", "35-50", "65+"]
    assert table.column("region").to_pylist() == ["EU", "NA", "other", "EU"]
    with pytest.raises(RestrictedColumn, match=r"\['age'\] of shoppers:v1 are restricted.*'age' → 'age_band'"):
        read_compliant(sqlite_ws, version, columns=["user_id", "age"])


def test_raw_read_without_the_role_is_refused_and_leaves_no_audit_row(sqlite_ws: Workspace) -> None:
    version = ingest_shoppers(sqlite_ws)
    tokens = Tokens(sqlite_ws)
    _, writer = tokens.issue("deployer", ["write"], actor="user:ops")
    reads = RestrictedReads(sqlite_ws)
    with pytest.raises(Forbidden, match="needs a named token with the 'read-restricted' role; got no token"):
        reads.read_dataset(version, raw=["age"], purpose="audit")
    with pytest.raises(Forbidden, match="has roles \\['write'\\], not 'read-restricted'"):
        reads.read_dataset(version, raw=["age"], principal=tokens.authenticate(writer), purpose="audit")
    forged = Principal("token:deployer", frozenset({"read-restricted"}), "deployer")  # roles come from the store
    with pytest.raises(Forbidden, match="not 'read-restricted'"):
        reads.read_dataset(version, raw=["age"], principal=forged, purpose="audit")
    assert reads.log() == []


def test_raw_read_with_the_role_is_audited_who_what_where_why_when(sqlite_ws: Workspace,
                                                                    clock: SimulatedClock) -> None:
    version = ingest_shoppers(sqlite_ws)
    tokens = Tokens(sqlite_ws)
    _, secret = tokens.issue("fairness-team", ["read-restricted"], actor="user:lead")
    reads = RestrictedReads(sqlite_ws)
    with pytest.raises(InvalidInput, match="needs a purpose"):
        reads.read_dataset(version, raw=["age"], principal=tokens.authenticate(secret))
    clock.advance(timedelta(hours=1))
    table = reads.read_dataset(version, columns=["user_id", "age", "income"], raw=["age", "income"],
                               principal=tokens.authenticate(secret), purpose="  legal  fairness audit ")
    assert table.column_names == ["user_id", "age", "income"]
    assert table.column("age").to_pylist() == [17, 30, 44, 70]
    [row] = reads.log()
    assert (row.actor, row.via, row.source_kind, row.source_ref, row.columns, row.purpose, row.at) == (
        "token:fairness-team", "python", "dataset_version", "shoppers:v1", ("age", "income"),
        "legal fairness audit", clock.now())
    with pytest.raises(InvalidInput, match="not restricted columns"):
        reads.read_dataset(version, raw=["clicked"], principal=tokens.authenticate(secret), purpose="x")


def test_a_revoked_token_is_refused_at_once_even_if_it_was_authenticated_before(sqlite_ws: Workspace) -> None:
    version = ingest_shoppers(sqlite_ws)
    tokens = Tokens(sqlite_ws)
    _, secret = tokens.issue("analyst", ["read-restricted"], actor="user:lead")
    principal = tokens.authenticate(secret)  # e.g. a long-running job that authenticated earlier
    tokens.revoke("analyst", actor="user:lead")
    with pytest.raises(Forbidden, match="'analyst' is revoked"):
        RestrictedReads(sqlite_ws).read_dataset(version, raw=["age"], principal=principal, purpose="audit")
    assert RestrictedReads(sqlite_ws).log() == []


def test_a_feature_view_reads_restricted_columns_only_through_their_compliant_transform(
        sqlite_ws: Workspace) -> None:
    ingest_shoppers(sqlite_ws)

    @feature_view(entities={"user_id": "string"}, features={"age_years": "int64"}, ttl=None, sources=("shoppers",))
    def raw_age(shoppers: pd.DataFrame) -> pd.DataFrame:
        return shoppers.rename(columns={"age": "age_years"})[["user_id", "event_time", "age_years"]]

    @feature_view(entities={"user_id": "string"}, features={"age_band": "string"}, ttl=None,
                  sources=("shoppers",))
    def banded_age(shoppers: str) -> str:
        return "SELECT user_id, event_time, age_band FROM shoppers"

    @feature_view(entities={"user_id": "string"}, features={"age": "int64"}, ttl=None, sources=("shoppers",))
    def raw_age_sql(shoppers: str) -> str:
        return "SELECT user_id, event_time, age FROM shoppers"

    with FeatureStore(sqlite_ws) as store:
        assert "age" not in store.sources_for(raw_age)["shoppers"].columns
        with pytest.raises(RestrictedColumn, match=r"\['age'\] of shoppers:v1 \(read by feature view 'raw_age'\)"):
            store.backfill(raw_age)
        with pytest.raises(RestrictedColumn, match="feature view 'raw_age_sql'.*'age_band'"):
            store.backfill(raw_age_sql)
        assert store.backfill(banded_age).rows == 4
        frame = store.training_frame(pd.DataFrame({"user_id": ["u2"], "event_time": pd.to_datetime(
            ["2026-02-01"], utc=True)}), ["banded_age:age_band"])
        assert frame["age_band"].tolist() == ["25-35"]


def test_fairness_evaluation_reads_a_restricted_column_raw_only_through_the_audited_path(
        sqlite_ws: Workspace) -> None:
    version = ingest_shoppers(sqlite_ws)
    with pytest.raises(RestrictedColumn, match="'age' → 'age_band'"):
        read_evaluation_frame(sqlite_ws, version, ["clicked", "age"], fairness=["age"])
    banded = read_evaluation_frame(sqlite_ws, version, ["clicked", "age_band"], fairness=["age_band"])
    assert banded["age_band"].tolist() == ["<18", "25-35", "35-50", "65+"]
    assert RestrictedReads(sqlite_ws).log() == []
    tokens = Tokens(sqlite_ws)
    _, secret = tokens.issue("fairness-bot", ["read-restricted"], actor="user:lead")
    frame = read_evaluation_frame(sqlite_ws, version, ["clicked", "age"], fairness=["age"],
                                  principal=tokens.authenticate(secret), purpose="fairness evaluation of ctr:v3")
    assert frame["age"].tolist() == [17, 30, 44, 70]
    [row] = RestrictedReads(sqlite_ws).log()
    assert (row.actor, row.columns, row.purpose) == ("token:fairness-bot", ("age",), "fairness evaluation of ctr:v3")


def test_compliant_bucket_keeps_nulls_and_labels_half_open_ranges() -> None:
    from yarnit.data.restricted import apply_restriction
    from yarnit.data.schema import ColumnRestriction

    r = ColumnRestriction(output="b", bucket=(18.0, 25.0))
    assert apply_restriction(pa.array([18, 24, 25, None, -1]), r).to_pylist() == ["18-25", "18-25", "25+", None, "<18"]


def test_recipe_training_frames_see_restricted_columns_only_through_their_compliant_transform(
        sqlite_ws: Workspace) -> None:
    import importlib
    from types import SimpleNamespace

    ctr = importlib.import_module("yarnit.recipes.ctr")
    recs = importlib.import_module("yarnit.recipes.recs_pipeline")

    version = ingest_shoppers(sqlite_ws)
    ctx = SimpleNamespace(workspace=sqlite_ws)  # the steps' readers use only the context's workspace
    ref = {"id": version.id, "ref": version.ref}
    frame = ctr._read(ctx, ref)  # type: ignore[arg-type]
    assert "age" not in frame.columns and frame["age_band"].tolist() == ["<18", "25-35", "35-50", "65+"]
    assert ctr._read(ctx, ref, ["clicked", "region"])["region"].tolist() == ["EU", "NA", "other", "EU"]  # type: ignore[arg-type]
    with pytest.raises(RestrictedColumn, match="shoppers:v1"):
        ctr._read(ctx, ref, ["clicked", "age"])  # type: ignore[arg-type]
    assert "age" not in recs._load(ctx, ref).columns  # type: ignore[arg-type]


def test_the_statistics_of_a_restricted_column_hold_no_raw_values(sqlite_ws: Workspace) -> None:
    version = ingest_shoppers(sqlite_ws)
    stats = version.stats()
    assert stats is not None
    age = stats.columns["age"]
    assert (age.min, age.max, age.quantiles, age.top_k, age.value_counts) == (None, None, None, [], None)
    assert stats.columns["clicked"].count == 4  # unrestricted columns keep their profile
