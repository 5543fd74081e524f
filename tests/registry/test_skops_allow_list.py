"""skops artifacts are checked against an exact list of types before anything loads (RELIABILITY.md target 22).

The corpus below is a genuine yarnit model whose schema.json was edited to carry one node that runs code when
skops rebuilds it. Each payload is proven live first (skops, told to trust what its own audit reports, runs it),
then yarnit must refuse it at register and at serve preload without the canary ever appearing.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sqlalchemy import insert

from yarnit.core import UnsafeArtifact
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn, load_predictor
from yarnit.registry.formats import SKOPS_TRUSTED_TYPES, audit_skops
from yarnit.serving.runtime import ModelRuntime
from yarnit.storage import Workspace
from yarnit.storage.schema import aliases, model_versions, models

from .conftest import fitted


def _node(loader: str, module: str, cls: str, **extra: Any) -> dict[str, Any]:
    return {"__class__": cls, "__module__": module, "__loader__": loader, **extra}


def _text(value: Any) -> dict[str, Any]:
    return _node("JsonNode", "builtins", "str", content=json.dumps(value), is_json=True)


def _tuple(*items: dict[str, Any]) -> dict[str, Any]:
    return _node("TupleNode", "builtins", "tuple", content=list(items))


def _call(module: str, function: str, *args: dict[str, Any]) -> dict[str, Any]:
    """A node skops rebuilds as ``module.function(*args)``."""
    return _node("ConstructorFromReduceNode", module, function, content=_tuple(*args))


def _empty_dict() -> dict[str, Any]:
    return _node("DictNode", "builtins", "dict", content={}, key_types=_node("ListNode", "builtins", "list",
                                                                              content=[]))


def payloads(canary: Path) -> dict[str, dict[str, Any]]:
    """Nodes that create ``canary`` when skops constructs them."""
    touch = f"open({str(canary)!r}, 'w').close()"
    return {
        "builtins.exec": _call("builtins", "exec", _text(touch)),
        "builtins.eval": _call("builtins", "eval", _text(touch)),
        "builtins.open": _call("builtins", "open", _text(str(canary)), _text("w")),
        "getattr(__import__('os'), 'system')": _node(
            "OperatorFuncNode", "operator", "call",
            attrs=_tuple(_call("builtins", "getattr", _call("builtins", "__import__", _text("os")), _text("system")),
                         _text(f"touch {canary}"))),
        "os.system via a reduce node": _node("LossNode", "os", "system", content=_empty_dict(),
                                             __reduce__={"args": _tuple(_text(f"touch {canary}"))}),
        "subprocess.run": _call("subprocess", "run", _node("ListNode", "builtins", "list",
                                                           content=[_text("touch"), _text(str(canary))])),
        "numpy object array holding os.system": _node(
            "NdArrayNode", "numpy", "ndarray", type="json", content=[_call("os", "system", _text(f"touch {canary}"))],
            shape=_text([1])),
    }


def _repack(artifact: bytes, edit: Callable[[dict[str, bytes]], None]) -> bytes:
    """The archive with its members (name → bytes) edited in place."""
    with zipfile.ZipFile(io.BytesIO(artifact)) as source:
        members = {name: source.read(name) for name in source.namelist()}
    edit(members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return out.getvalue()


def crafted(artifact: bytes, payload: dict[str, Any]) -> bytes:
    """A genuine logistic pipeline whose ``memory`` attribute is ``payload``."""

    def edit(members: dict[str, bytes]) -> None:
        schema = json.loads(members["schema.json"])
        schema["content"]["content"]["memory"] = payload
        members["schema.json"] = json.dumps(schema).encode()

    return _repack(artifact, edit)


class Boom:
    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({self.canary!r}, 'w').close()",))


def object_npy_member(artifact: bytes, canary: Path) -> bytes:
    """A genuine model whose first array file was swapped for a pickled object array."""
    buffer = io.BytesIO()
    np.save(buffer, np.array([Boom(str(canary))], dtype=object), allow_pickle=True)

    def edit(members: dict[str, bytes]) -> None:
        members[sorted(name for name in members if name.endswith(".npy"))[0]] = buffer.getvalue()

    return _repack(artifact, edit)


def corpus(artifact: bytes, canary: Path) -> dict[str, bytes]:
    files = {name: crafted(artifact, payload) for name, payload in payloads(canary).items()}
    files["object .npy member"] = object_npy_member(artifact, canary)
    files["harmless object array (skops trusts it)"] = crafted(artifact, _node(
        "NdArrayNode", "numpy", "ndarray", type="json", content=[_text("a")], shape=_text([1])))
    return files


def test_every_payload_of_the_corpus_runs_code_when_skops_trusts_what_it_reports(
        artifact: bytes, tmp_path: Path) -> None:
    # The control: without yarnit's list, trusting skops' own report runs each payload. A corpus that could not
    # run anything would make the refusals below meaningless.
    for i, name in enumerate(payloads(tmp_path / "unused")):
        canary = tmp_path / f"control-{i}"
        data = crafted(artifact, payloads(canary)[name])
        try:
            sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        except Exception:
            pass  # some payloads break the rebuild after they ran
        assert canary.exists(), f"payload {name!r} did not run even when trusted: the corpus is stale"


@pytest.mark.parametrize("name", [*payloads(Path("x")), "object .npy member", "harmless object array (skops trusts it)"])
def test_crafted_skops_files_are_refused_before_loading_and_never_run(artifact: bytes, tmp_path: Path,
                                                                     name: str) -> None:
    canary = tmp_path / "pwned"
    data = corpus(artifact, canary)[name]
    with pytest.raises(UnsafeArtifact, match="Refusing a skops artifact before loading it"):
        load_predictor(data, ArtifactFormat.SKOPS)
    assert not canary.exists()


def test_register_refuses_the_whole_corpus_and_stores_nothing(sqlite_ws: Workspace, artifact: bytes,
                                                                tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    registry = ModelRegistry(sqlite_ws)
    for name, data in corpus(artifact, canary).items():
        with pytest.raises(UnsafeArtifact):
            registry.register("ctr", data, ArtifactFormat.SKOPS)
        assert not canary.exists(), name
    assert list(sqlite_ws.artifacts.iter_shas()) == []
    assert not registry.exists("ctr")


def _plant(ws: Workspace, model: str, data: bytes) -> None:
    """A production version whose artifact was stored by an older, trusting yarnit (rows written directly)."""
    ref = ws.artifacts.put_bytes(data)
    now = ws.clock.now()
    with ws.metadata.begin() as conn:
        conn.execute(insert(models).values(name=model, description="", created_at=now))
        conn.execute(insert(model_versions).values(
            id=f"mv_{model}", model_name=model, version=1, artifact_sha256=ref.sha256,
            artifact_format=ArtifactFormat.SKOPS.value, signature={}, metrics={}, params={}, dataset_version_ids=[],
            created_at=now, tainted=False))
        conn.execute(insert(aliases).values(model_name=model, alias="production", version=1, updated_at=now))


def test_serve_preload_refuses_a_planted_crafted_model_and_never_runs_it(sqlite_ws: Workspace, artifact: bytes,
                                                                          tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    files = corpus(artifact, canary)
    names = {f"m{i}": name for i, name in enumerate(files)}
    for model, name in names.items():
        _plant(sqlite_ws, model, files[name])
    runtime = ModelRuntime(ModelRegistry(sqlite_ws), sqlite_ws.clock, refresh_s=0.0)
    outcomes = runtime.preload()
    assert outcomes == {model: "not loaded" for model in names}
    rejected = {e.model: e.reason for e in runtime.swaps if e.outcome == "rejected"}
    assert set(rejected) == set(names)
    for model, reason in rejected.items():
        assert "Refusing a skops artifact before loading it" in reason, (names[model], reason)
    assert not canary.exists()


def test_the_list_is_exact_and_names_no_callable_builtin() -> None:
    assert not any(t.endswith(".") or "*" in t for t in SKOPS_TRUSTED_TYPES)
    for dangerous in ("builtins.exec", "builtins.eval", "builtins.getattr", "builtins.__import__", "builtins.open",
                      "os.system", "subprocess.run", "subprocess.Popen"):
        assert dangerous not in SKOPS_TRUSTED_TYPES


def test_both_trainers_artifacts_pass_the_audit_and_load() -> None:
    from yarnit.training.trainers import HistGbmTrainer, LogisticTrainer

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"price": rng.normal(size=300), "fiber": rng.choice(["merino", "acrylic", "silk"], 300),
                          "in_stock": rng.random(300) > 0.5, "hour": rng.integers(0, 24, 300)})
    labels = (frame["price"] > 0).astype(int).to_numpy()
    for trainer in (LogisticTrainer(), HistGbmTrainer(max_iter=5)):
        model = trainer.fit(frame, labels, seed=0)
        warm = trainer.fit(frame, labels, seed=1, init=model)
        for data in (model.artifact, warm.artifact):
            assert set(audit_skops(data)) <= SKOPS_TRUSTED_TYPES
            scores = load_predictor(data, ArtifactFormat.SKOPS).predict_proba(frame.head(3).to_dict("records"))
            assert np.all((scores >= 0) & (scores <= 1))
    assert audit_skops(dump_sklearn(fitted())) == []  # a plain logistic pipeline: skops trusts all of it


def test_pickle_bytes_inside_a_zip_named_like_skops_are_still_refused(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", pickle.dumps(Boom(str(canary))))
    with pytest.raises(UnsafeArtifact, match="not a readable skops archive"):
        load_predictor(out.getvalue(), ArtifactFormat.SKOPS)
    assert not canary.exists()


def test_a_ranker_bundle_whose_click_model_is_crafted_is_refused_and_never_runs(artifact: bytes,
                                                                                tmp_path: Path) -> None:
    from yarnit.core.hashing import sha256_bytes
    from yarnit.recipes.ranker import CLICK_MEMBER, RECS_MEMBER, SCHEMA
    from yarnit.registry.formats import MANIFEST, dump_bundle

    canary = tmp_path / "pwned"
    click = crafted(artifact, payloads(canary)["builtins.exec"])
    recs = b"unused: the click model is loaded first"
    manifest = {"schema": SCHEMA, "members": {CLICK_MEMBER: sha256_bytes(click), RECS_MEMBER: sha256_bytes(recs)},
                "click_model": {"name": "ctr", "version": 1, "id": "mv_1", "sha256": sha256_bytes(click),
                                "format": "skops", "created_at": "2026-01-05T00:00:00+00:00",
                                "transform": "ctr_features_v1", "inputs": {}},
                "recs": {"name": "recs", "version": 1, "id": "mv_2", "sha256": sha256_bytes(recs), "serving": []},
                "rules": {}, "defaults": {}}
    bundle = dump_bundle({MANIFEST: json.dumps(manifest).encode(), CLICK_MEMBER: click, RECS_MEMBER: recs})
    with pytest.raises(UnsafeArtifact, match="Refusing a skops artifact before loading it: node 'builtins.exec'"):
        load_predictor(bundle, ArtifactFormat.RANKER)
    assert not canary.exists()


def test_a_remembered_audit_answers_as_the_audit_and_a_refused_archive_is_refused_every_time() -> None:
    from yarnit.registry import formats

    data = dump_sklearn(fitted())  # audited once when written: remembered by its sha256
    assert hashlib.sha256(data).digest() in formats._AUDITED
    first = audit_skops(data)
    assert first == formats._audit_skops(data)
    first.append("builtins.eval")  # the caller's list is its own: the next answer is unchanged
    assert audit_skops(data) == formats._audit_skops(data)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps({"__loader__": "ObjectNode", "__module__": "os",
                                                    "__class__": "system", "content": {}}))
    for _ in range(2):
        with pytest.raises(UnsafeArtifact, match="outside yarnit's list: os.system"):
            audit_skops(out.getvalue())
    assert hashlib.sha256(out.getvalue()).digest() not in formats._AUDITED
