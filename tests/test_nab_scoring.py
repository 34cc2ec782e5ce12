"""NAB scoring rules on tiny synthetic streams, and one published score reproduced."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.nab import (
    LabelledFile,
    Profile,
    evaluate_detector,
    load_corpus,
    load_profiles,
    load_published_scores,
    optimise_threshold,
    score_detector,
)
from lagllama.settings import shared_datasets_dir

STANDARD = Profile("standard", tp_weight=1.0, fn_weight=1.0, fp_weight=0.11)
PROFILES = [
    STANDARD,
    Profile("reward_low_FP_rate", tp_weight=1.0, fn_weight=1.0, fp_weight=0.22),
    Profile("reward_low_FN_rate", tp_weight=1.0, fn_weight=2.0, fp_weight=0.11),
]
LENGTH = 1000  # probation: floor(0.15 * 1000) = 150 rows
WINDOW = (400, 499)  # 100 rows


def stream(length: int = LENGTH, windows: Sequence[tuple[int, int]] = (WINDOW,)) -> LabelledFile:
    stamps = pd.date_range("2020-01-01", periods=length, freq="5min")
    return LabelledFile(stamps, np.zeros(length), np.array(windows, np.int64).reshape(-1, 2))


def raw_with_alerts(rows: list[int], item: LabelledFile | None = None) -> float:
    """Raw standard score of a detector alerting (score 1) on ``rows`` only."""
    item = item or stream()
    scores = np.zeros(len(item.timestamps))
    scores[rows] = 1.0
    return score_detector({"f": scores}, {"f": item}, STANDARD, 1.0).raw_score


def nab_sigmoid(x: float) -> float:
    return 2 / (1 + math.exp(5 * x)) - 1


def test_early_detection_earns_the_full_tp_weight_and_late_ones_less() -> None:
    start, end = WINDOW
    assert raw_with_alerts([start]) == pytest.approx(1.0)
    # halfway: S(-0.5) / S(-1) = 0.848 / 0.987; the last row is worth almost nothing
    middle = (start + end + 1) // 2
    assert raw_with_alerts([middle]) == pytest.approx(nab_sigmoid(-0.5) / nab_sigmoid(-1))
    assert raw_with_alerts([middle]) == pytest.approx(0.86, abs=0.01)
    assert raw_with_alerts([end]) == pytest.approx(nab_sigmoid(-0.01) / nab_sigmoid(-1))
    assert 0 < raw_with_alerts([end]) < 0.03
    assert raw_with_alerts([]) == -1.0  # missed window: -fn


def test_only_the_first_detection_in_a_window_counts() -> None:
    assert raw_with_alerts([420, 430, 480]) == raw_with_alerts([420])
    assert raw_with_alerts([420]) > raw_with_alerts([430])


def test_false_positive_costs_grow_with_distance_after_a_window() -> None:
    found = raw_with_alerts([WINDOW[0]])
    far_after = found - raw_with_alerts([WINDOW[0], 900])  # 401 rows > 3 widths
    just_after = found - raw_with_alerts([WINDOW[0], WINDOW[1] + 1])
    before_any_window = found - raw_with_alerts([WINDOW[0], 200])
    assert far_after == pytest.approx(0.11)
    assert before_any_window == pytest.approx(0.11)
    assert just_after == pytest.approx(-0.11 * nab_sigmoid(1 / 99))
    assert 0 < just_after < 0.01


def test_probationary_rows_are_not_scored() -> None:
    assert raw_with_alerts([0, 100, 149]) == raw_with_alerts([])
    assert raw_with_alerts([150]) == pytest.approx(-1.11)
    # a window wholly inside the probation is neither found nor missed
    early = stream(windows=[(10, 20), WINDOW])
    assert raw_with_alerts([], early) == -1.0
    # probation is capped at 750 rows
    long = stream(length=10_000, windows=[(800, 899)])
    assert stream(length=10_000).probation == 750
    assert raw_with_alerts([749], long) == -1.0
    assert raw_with_alerts([750], long) == pytest.approx(-1.11)


def test_null_detector_scores_0_and_perfect_detector_100() -> None:
    corpus = {"a": stream(), "b": stream(windows=[(300, 349), (700, 799)])}
    null = {name: np.zeros(LENGTH) for name in corpus}
    perfect = {name: np.zeros(LENGTH) for name in corpus}
    for name, item in corpus.items():
        perfect[name][item.windows[:, 0]] = 1.0
    for profile, result in evaluate_detector(null, corpus, PROFILES).items():
        assert result.score == pytest.approx(0.0), profile
        assert result.windows_found == 0
    for profile, result in evaluate_detector(perfect, corpus, PROFILES).items():
        assert result.score == pytest.approx(100.0), profile
        assert (result.windows_found, result.false_positives) == (3, 0)


def test_threshold_optimisation_picks_the_best_swept_threshold() -> None:
    rng = np.random.default_rng(0)
    corpus = {"a": stream(), "b": stream(windows=[(300, 349), (700, 799)]), "c": stream(windows=[])}
    # coarse scores: many ties, and windows that score higher than the background
    scores = {name: rng.integers(0, 20, LENGTH) / 20 for name in corpus}
    for name, item in corpus.items():
        for start, end in item.windows:
            scores[name][start : end + 1] += rng.integers(0, 8, end - start + 1) / 20
    candidates = np.r_[np.unique(np.concatenate(list(scores.values()))), 2.0]
    for profile in PROFILES:
        raw = [score_detector(scores, corpus, profile, t).raw_score for t in candidates]
        best = optimise_threshold(scores, corpus, profile)
        assert score_detector(scores, corpus, profile, best).raw_score == pytest.approx(max(raw))
        # ties go to the highest threshold, as in NAB
        assert best == pytest.approx(candidates[np.flatnonzero(np.isclose(raw, max(raw)))[-1]])
        assert evaluate_detector(scores, corpus, [profile])[profile.name].threshold == best


def test_scores_must_cover_every_file() -> None:
    with pytest.raises(ValueError, match="missing"):
        score_detector({"a": np.zeros(LENGTH)}, {"a": stream(), "b": stream()}, STANDARD, 0.5)


@pytest.fixture(scope="module")
def nab_published() -> tuple[Path, Path]:
    """NAB's data folder and the extracted ``results/`` of numenta/NAB (skip when absent)."""
    nab_dir = shared_datasets_dir() / "nab"
    results = Path(os.environ.get("LAGLLAMA_NAB_RESULTS", "/work/nab_published/results"))
    if not (nab_dir / "labels" / "combined_windows.json").exists():
        pytest.skip(f"NAB data not found at {nab_dir}")
    if not (results / "numenta").is_dir():
        pytest.skip(f"NAB published results not found at {results} (set LAGLLAMA_NAB_RESULTS)")
    return nab_dir, results


def test_reproduces_numentas_published_standard_score(nab_published: tuple[Path, Path]) -> None:
    nab_dir, results = nab_published
    corpus = load_corpus(nab_dir)
    published = json.loads((nab_dir / "results" / "final_results.json").read_text())
    profile = next(p for p in load_profiles(nab_dir) if p.name == "standard")
    scores = load_published_scores(results, "numenta", corpus)
    result = evaluate_detector(scores, corpus, [profile])["standard"]
    assert result.score == pytest.approx(published["numenta"]["standard"], abs=0.1)
    assert result.score == pytest.approx(70.1, abs=0.05)
