"""Ingest: every format, identical content → same version, manifests, streaming, bad input naming file/line/column."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from yarnit.core.errors import InvalidInput
from yarnit.data import (
    DatasetNotFound,
    Datasets,
    DatasetSchema,
    IngestError,
    Progress,
    Schemas,
    hmac_hex,
)
from yarnit.storage import Workspace


def write_all_formats(frame: pd.DataFrame, tmp_path: Path) -> dict[str, Path]:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    paths = {"csv": tmp_path / "d.csv", "parquet": tmp_path / "d.parquet", "jsonl": tmp_path / "d.jsonl",
             "arrow": tmp_path / "d.arrow"}
    frame.to_csv(paths["csv"], index=False)
    pq.write_table(table, paths["parquet"], row_group_size=97)
    paths["jsonl"].write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")
    feather.write_feather(table, paths["arrow"])
    return paths


def test_every_format_gives_the_same_content_and_the_same_version(
        ws: Workspace, tmp_path: Path, make_clicks: Callable[..., pd.DataFrame]) -> None:
    frame = make_clicks(300).drop(columns=["email"])
    schema = DatasetSchema.from_yaml(
        "subject: user_id\ncolumns:\n  event_id: {type: int64}\n  user_id: {type: string}\n  country: {type: string}\n"
        "  device: {type: string}\n  price: {type: float64}\n  position: {type: int64}\n  clicked: {type: bool}\n")
    datasets = Datasets(ws)
    refs = {fmt: datasets.ingest_file("clicks", path, schema=schema).ref
            for fmt, path in write_all_formats(frame, tmp_path).items()}
    assert set(refs.values()) == {"clicks:v1"}, refs
    assert datasets.ingest_frame("clicks", frame, source="pandas", schema=schema).ref == "clicks:v1"
    version = datasets.get("clicks")
    assert version.row_count == 300 and version.schema["price"] == "float64"
    pd.testing.assert_frame_equal(datasets.read(version), frame)


def test_manifest_records_everything_the_issue_lists(
        keyed_ws: Workspace, schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    hashed = DatasetSchema.from_yaml(schema.to_yaml().replace("user_id: {type: string, nullable: false}",
                                                              "user_id: {type: string, nullable: false, pii: hash}"))
    datasets = Datasets(keyed_ws)
    parent = datasets.ingest_frame("raw-clicks", make_clicks(50), source="raw", subject="user_id")
    frame = make_clicks(200)
    v = datasets.ingest_frame("clicks", frame, source="s3://bucket/clicks/2026-01-05", schema=hashed,
                              parents=[parent.ref], run_id="run_01")
    assert v.ref == "clicks:v1" and v.row_count == 200 and len(v.content_sha256) == 64
    assert "email" not in v.schema and v.pii_columns == ("user_id",)
    assert v.privacy == {"pii": {"email": "drop", "user_id": "hash"}, "subject_column": "user_id",
                         "subject_encoding": "hmac", "personal_columns": ["user_id"], "suppressed_rows": 0}
    assert v.retention_class == "events" and v.parents == (parent.id,) and v.run_id == "run_01"
    assert v.created_at == keyed_ws.clock.now()
    assert v.schema_id == Schemas(keyed_ws).get("clicks").id
    assert v.subject_count == frame["user_id"].nunique()
    subjects = datasets.subjects(v).to_pylist()
    key = keyed_ws.settings.hmac_key.encode()
    assert subjects == sorted(hmac_hex(key, u) for u in frame["user_id"].unique())
    stats = v.stats()
    assert stats is not None and stats.columns["price"].count == 200 and stats.slices["country"]
    assert stats.columns["user_id"].top_k == [] and "example.org" not in json.dumps(v.statistics)
    stored = datasets.read(v)
    assert stored["user_id"].iloc[0] == hmac_hex(key, frame["user_id"].iloc[0])


def test_streaming_in_small_chunks_reports_progress_and_matches_one_shot(
        sqlite_ws: Workspace, tmp_path: Path, make_clicks: Callable[..., pd.DataFrame]) -> None:
    frame = make_clicks(5000).drop(columns=["email"])
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    seen: list[Progress] = []
    datasets = Datasets(sqlite_ws)
    from yarnit.data import read_batches

    batches = read_batches(path, block_bytes=4096, progress=seen.append)
    chunked = datasets.ingest_batches("a", batches, source=str(path), chunk_rows=1000, subject="user_id")
    whole = datasets.ingest_frame("b", datasets.read_table(chunked), source="x", subject="user_id")
    assert len(seen) > 10 and seen[-1].rows == 5000 and seen[-1].bytes_read == path.stat().st_size
    assert chunked.row_count == 5000
    stats_a, stats_b = chunked.stats(), whole.stats()
    assert stats_a is not None and stats_b is not None
    assert stats_a.columns["position"].value_counts == stats_b.columns["position"].value_counts


def test_malformed_csv_line_names_file_line_and_fix(sqlite_ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("event_id,country,price\n1,DE,2.5\n2,FR,3.0\n3,US\n4,JP,1.0\n")
    with pytest.raises(IngestError, match=rf"^{path}, line 4: has 2 fields where the header has 3"):
        Datasets(sqlite_ws).ingest_file("bad", path)
    assert Datasets(sqlite_ws).list() == []


def test_wrong_type_names_file_line_and_column_even_with_quoted_newlines(sqlite_ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    rows = "".join(f"{i},\"note {i}\",{i}.5\n" for i in range(2000))
    path.write_text("event_id,note,price\n" + rows + '2000,"two\nlines",9.5\n2001,x,cheap\n')
    schema = DatasetSchema.from_yaml("columns:\n  event_id: {type: int64}\n  note: {type: string}\n"
                                     "  price: {type: float64}\n")
    with pytest.raises(IngestError) as caught:
        Datasets(sqlite_ws).ingest_file("typed", path, schema=schema)
    assert (caught.value.path, caught.value.line, caught.value.column) == (str(path), 2004, "price")
    assert "value 'cheap' is not a valid float64" in str(caught.value)


def test_bad_json_line_is_named(sqlite_ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": \n')
    with pytest.raises(IngestError, match=rf"^{path}, line 3: is not valid JSON"):
        Datasets(sqlite_ws).ingest_file("events", path)


@pytest.mark.parametrize(("content", "message"), [("", r"is empty \(0 bytes\)"),
                                                  ("a,b\n", "has a header but no data rows")])
def test_empty_file_is_refused_and_records_nothing(sqlite_ws: Workspace, tmp_path: Path, content: str,
                                                   message: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(IngestError, match=message):
        Datasets(sqlite_ws).ingest_file("empty", path)
    assert Datasets(sqlite_ws).list() == []
    assert not list((sqlite_ws.artifacts.root / "staging").glob("ingest-*"))


def test_declared_column_missing_from_file_is_named(sqlite_ws: Workspace, tmp_path: Path,
                                                    schema: DatasetSchema) -> None:
    path = tmp_path / "d.csv"
    path.write_text("event_id,user_id\n1,u1\n")
    with pytest.raises(IngestError, match=r"column 'country': is declared in the schema but missing"):
        Datasets(sqlite_ws).ingest_file("clicks", path, schema=schema)


def test_unknown_suffix_and_bad_names_say_what_is_valid(sqlite_ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(IngestError, match="pass --format with one of csv, parquet, jsonl, arrow"):
        Datasets(sqlite_ws).ingest_file("x", path)
    with pytest.raises(InvalidInput, match="Dataset name 'Bad Name'"):
        Datasets(sqlite_ws).ingest_frame("Bad Name", pd.DataFrame({"a": [1]}), source="t")


def test_lookup_by_ref_id_and_unknown_version(ws: Workspace) -> None:
    datasets = Datasets(ws)
    v1 = datasets.ingest_frame("yarn", pd.DataFrame({"fiber": ["wool"]}), source="a")
    v2 = datasets.ingest_frame("yarn", pd.DataFrame({"fiber": ["silk"]}), source="b")
    assert datasets.resolve("yarn").id == v2.id and datasets.resolve("yarn:v1").id == v1.id
    assert datasets.resolve("dataset:yarn:1").id == v1.id and datasets.resolve(v1.id).ref == "yarn:v1"
    assert datasets.previous(v2) == v1 and datasets.previous(v1) is None
    with pytest.raises(DatasetNotFound, match="no version 9 of dataset 'yarn'.*yarnit data list"):
        datasets.get("yarn", 9)


def test_errors_never_show_values_of_personal_columns(sqlite_ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("user_id,age\nalice,31\nbob,thirty\n")
    schema = DatasetSchema.from_yaml("subject: user_id\ncolumns:\n  user_id: {type: string}\n"
                                     "  age: {type: int64, pii: keep}\n")
    with pytest.raises(IngestError) as caught:
        Datasets(sqlite_ws).ingest_file("people", path, schema=schema)
    assert caught.value.line == 3 and caught.value.column == "age"
    assert "thirty" not in str(caught.value) and "a personal value, not shown" in str(caught.value)
    frame = pd.DataFrame({"user_id": ["alice"], "age": ["thirty"]})
    with pytest.raises(IngestError) as caught:
        Datasets(sqlite_ws).ingest_frame("people", frame, source="t", schema=schema)
    assert "thirty" not in str(caught.value) and "row 1" in str(caught.value)


def test_canonical_parquet_is_stored_byte_for_byte_unless_pii_must_change(
        keyed_ws: Workspace, tmp_path: Path) -> None:
    table = pa.table({"user_id": pa.array(["u1", "u2", "u1"], pa.string()), "price": [1.0, 2.0, 3.0]})
    path = tmp_path / "canonical.parquet"
    pq.write_table(table, path)
    datasets = Datasets(keyed_ws)
    v = datasets.ingest_file("prices", path, subject="user_id")
    assert keyed_ws.artifacts.get_bytes(v.artifact_sha256) == path.read_bytes()
    assert datasets.ingest_file("prices", path, subject="user_id").id == v.id and v.subject_count == 2
    hashed = DatasetSchema.from_yaml("subject: user_id\ncolumns:\n  user_id: {type: string, pii: hash}\n"
                                     "  price: {type: float64}\n")
    h = datasets.ingest_file("prices-hashed", path, schema=hashed)
    assert keyed_ws.artifacts.get_bytes(h.artifact_sha256) != path.read_bytes()
    assert "u1" not in set(datasets.read(h)["user_id"])
