"""The public surface of yarnit.features: every name in __all__ exists, and the old names stay."""

from __future__ import annotations

import yarnit.features as features


def test_every_exported_name_exists_and_is_listed_once() -> None:
    assert len(features.__all__) == len(set(features.__all__))
    missing = [name for name in features.__all__ if not hasattr(features, name)]
    assert missing == []


def test_request_time_transforms_keep_their_names() -> None:
    # Registered models record the transform name; these must never disappear.
    for name in ("TRANSFORMS", "apply_transform", "ctr_features_v1", "get_transform", "price_bucket"):
        assert name in features.__all__
    assert "ctr_features_v1" in features.TRANSFORMS
