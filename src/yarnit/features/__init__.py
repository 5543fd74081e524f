"""Features: request-time transforms shared by training and serving (the feature store lands with its issue)."""

from .request_time import TRANSFORMS, apply_transform, ctr_features_v1, get_transform, price_bucket

__all__ = ["TRANSFORMS", "apply_transform", "ctr_features_v1", "get_transform", "price_bucket"]
