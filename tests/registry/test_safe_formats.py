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
