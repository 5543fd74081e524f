"""No code execution on load (RELIABILITY.md target 22)."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
from pathlib import Path

import pytest

from yarnit.core import InvalidInput, UnsafeArtifact
from yarnit.registry import ArtifactFormat, ModelRegistry, load_predictor
from yarnit.storage import Workspace


class Boom:
    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.canary}",))


def malicious_corpus(canary: Path) -> list[bytes]:
    raw = pickle.dumps(Boom(str(canary)))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("model.pkl", raw)
    return [raw, gzip.compress(raw), pickle.dumps(Boom(str(canary)), protocol=2), zipped.getvalue()]


@pytest.mark.parametrize("fmt", list(ArtifactFormat))
def test_malicious_pickles_never_run(tmp_path: Path, fmt: ArtifactFormat) -> None:
    canary = tmp_path / "pwned"
    for payload in malicious_corpus(canary):
        with pytest.raises((UnsafeArtifact, InvalidInput)):
            load_predictor(payload, fmt)
    assert not canary.exists()


def test_registry_refuses_to_register_a_pickle(sqlite_ws: Workspace, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    with pytest.raises(UnsafeArtifact, match="pickle.*runs code when loaded"):
        ModelRegistry(sqlite_ws).register("ctr", pickle.dumps(Boom(str(canary))), ArtifactFormat.SKOPS)
    assert not canary.exists()
    assert list(sqlite_ws.artifacts.iter_shas()) == []


def test_lightgbm_text_models_load_and_score(tmp_path: Path) -> None:
    import lightgbm
    import numpy as np

    from yarnit.registry import dump_lightgbm

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] > 0).astype(int)
    booster = lightgbm.train({"objective": "binary", "verbose": -1, "num_leaves": 4},
                             lightgbm.Dataset(x, y, feature_name=["a", "b"]), num_boost_round=10)
    predictor = load_predictor(dump_lightgbm(booster), ArtifactFormat.LIGHTGBM_TEXT)
    scores = predictor.predict_proba([{"a": 2.0, "b": 0.0}, {"a": -2.0, "b": 0.0}])
    assert scores[0] > 0.5 > scores[1]
    with pytest.raises(InvalidInput, match="Feature 'a' must be a number"):
        predictor.predict_proba([{"a": "high"}])


def test_unknown_format_lists_valid_ones() -> None:
    with pytest.raises(InvalidInput, match="Unknown artifact format 'pickle'; valid formats: skops"):
        load_predictor(b"x", "pickle")


def test_bundles_that_unpack_too_large_are_refused_before_they_are_read(monkeypatch) -> None:
    from yarnit.registry import formats

    bundle = formats.dump_bundle({"manifest.json": b"{}", "items.npy": b"\0" * 100_000})
    assert set(formats.read_bundle(bundle, "yarnit-recs-npz")) == {"manifest.json", "items.npy"}
    monkeypatch.setattr(formats, "_MAX_UNPACKED_BYTES", 50_000)  # the 100 kB of zeros compress to ~100 bytes
    with pytest.raises(formats.UnsafeArtifact, match="unpacks to 100,002 bytes"):
        formats.read_bundle(bundle, "yarnit-recs-npz")


# --- the wider corpus (issue 22): every pickle dialect and wrapper, through every loader and registration path ---

def wider_corpus(canary: Path) -> dict[str, bytes]:
    """Pickles that run ``touch canary`` when loaded: every protocol, joblib (plain and compressed),
    cloudpickle, compressed wrappers, and numpy object arrays (which numpy stores as pickles)."""
    import bz2
    import lzma
    import zlib

    import cloudpickle
    import joblib
    import numpy as np

    boom = Boom(str(canary))
    corpus = {f"protocol-{p}": pickle.dumps(boom, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)}
    for compress in (0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)):
        buffer = io.BytesIO()
        joblib.dump(boom, buffer, compress=compress)
        corpus[f"joblib-{compress}"] = buffer.getvalue()
    corpus["cloudpickle"] = cloudpickle.dumps(boom)
    corpus["cloudpickle-function"] = cloudpickle.dumps(lambda: os.system(f"touch {canary}"))
    raw = pickle.dumps(boom)
    corpus |= {"zlib": zlib.compress(raw), "bz2": bz2.compress(raw), "lzma": lzma.compress(raw),
               "gzip-of-gzip": gzip.compress(gzip.compress(raw))}
    npz = io.BytesIO()
    np.savez(npz, model=np.array([boom], dtype=object))
    corpus["npz-object-array"] = npz.getvalue()
    npy = io.BytesIO()
    np.save(npy, np.array([boom], dtype=object))
    corpus["npy-object-array"] = npy.getvalue()
    for member in ("model.bin", "data.pkl", "manifest.json"):
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w") as archive:
            archive.writestr(member, raw)
        corpus[f"zip-{member}"] = zipped.getvalue()
    return corpus


def test_the_wider_corpus_runs_code_when_loaded_the_unsafe_way(tmp_path: Path) -> None:
    """The corpus is live: loading one payload the unsafe way does create the canary (else the tests below
    could not fail)."""
    import joblib

    canary = tmp_path / "pwned"
    corpus = wider_corpus(canary)
    joblib.load(io.BytesIO(corpus["joblib-('zlib', 3)"]))
    assert canary.exists()


def test_every_loader_refuses_the_wider_corpus_and_none_runs(tmp_path: Path) -> None:
    from yarnit.core import IntegrityError
    from yarnit.registry import formats

    canary = tmp_path / "pwned"
    refused = 0
    for name, payload in wider_corpus(canary).items():
        for fmt in ArtifactFormat:
            with pytest.raises((UnsafeArtifact, InvalidInput)):
                load_predictor(payload, fmt)
            refused += 1
        with pytest.raises(UnsafeArtifact):
            formats.load_arrays(payload)
        for claimed in ("yarnit-recs-npz", "yarnit-ranker", "yarnit-intent-npz"):
            try:
                formats.bundle_manifest(formats.read_bundle(payload, claimed), claimed)
            except (UnsafeArtifact, InvalidInput, IntegrityError):
                refused += 1
            else:
                raise AssertionError(f"{name} was read as a {claimed} bundle")
        assert not canary.exists(), name
    assert refused == len(wider_corpus(canary)) * (len(ArtifactFormat) + 3)


def test_registration_refuses_the_wider_corpus_in_every_format_and_stores_nothing(sqlite_ws: Workspace,
                                                                                 tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    registry = ModelRegistry(sqlite_ws)
    for name, payload in wider_corpus(canary).items():
        for fmt in ArtifactFormat:
            with pytest.raises((UnsafeArtifact, InvalidInput)):
                registry.register("ctr", payload, fmt)
        assert not canary.exists(), name
    assert list(sqlite_ws.artifacts.iter_shas()) == []
    assert registry.list_models() == []


def test_artifact_and_temp_directories_are_never_group_or_world_writable(tmp_path: Path) -> None:
    """Even under a umask of 0 (CVE-2026-4137: temp dirs created 0o777 let others swap artifacts), nothing the
    workspace creates while ingesting a dataset, registering and loading a model is writable by group or others."""
    from testsupport import register_ctr

    from yarnit.core import Settings, SimulatedClock, utc
    from yarnit.storage import open_workspace

    old = os.umask(0)
    try:
        ws = open_workspace(Settings.for_home(tmp_path / "home"), SimulatedClock(utc(2026, 1, 5, 9)))
        try:
            import pandas as pd

            from yarnit.data import Datasets

            # a dataset first: its publisher creates the artifact tree's directories before any model does
            Datasets(ws).ingest_frame("clicks", pd.DataFrame({"x": [1, 2, 3]}), source="t", no_subject="test rows")
            register_ctr(ws)
            load_predictor(ws.artifacts.get_bytes(ModelRegistry(ws).get("ctr", 1).artifact_sha256), "skops")
        finally:
            ws.close()
    finally:
        os.umask(old)
    loose = [f"{oct(p.lstat().st_mode & 0o777)} {p}" for p in [tmp_path / "home", *(tmp_path / "home").rglob("*")]
             if not p.is_symlink() and p.lstat().st_mode & 0o022]
    assert not loose, "group/world-writable under the workspace:\n" + "\n".join(loose)
