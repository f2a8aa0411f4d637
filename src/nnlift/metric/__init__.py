"""Similarity learning (TensorFlow Similarity's workflow on PyTorch): train, index, look up, calibrate, evaluate."""

from .calibration import Calibration, calibrate_thresholds, classification_at
from .model import NO_MATCH, Lookup, SimilarityModel

__all__ = ["SimilarityModel", "Lookup", "NO_MATCH", "Calibration", "calibrate_thresholds", "classification_at"]
