"""Anomaly detection from one-step predictive distributions, online and calibrated per series.

:mod:`.predictive` computes every point's next-step distribution from its past only (one
teacher-forced forward pass per block for Lag-Llama, a windowed Gaussian on seasonal naive
errors for the baseline); :mod:`.calibration` turns the observed values' tail probabilities
into scores as HTM's anomaly likelihood does; :mod:`.api` reads tables and writes one row per
point; :mod:`.plotting` draws them. ``benchmarks/nab.py --detect`` scores it on NAB.
"""

from lagllama.detection.api import Detector, detect
from lagllama.detection.calibration import DEFAULT_THRESHOLD, Calibration

__all__ = ["DEFAULT_THRESHOLD", "Calibration", "Detector", "detect"]
