"""The broad dev benchmark (``benchmarks/dev_broad.py``): windows, contamination guard,
aggregates, resume cache and report, on synthetic data (real data only where noted)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import benchmarks.common
from benchmarks import dev_broad
from benchmarks.dev_broad import (
    DevDataset,
    Plan,
    aggregates,
    cached_row,
    choose_windows,
    dev_datasets,
    full_series,
    load_task,
    make_task,
    pair_table,
    parse_models,
    parse_pairs,
    pretrained_without_broad_holdouts,
    read_cache,
    seed_aggregates,
    seed_spread,
)
from lagllama.pretraining.corpus import make_entry


def _entries(lengths: list[int], freq: str = "M") -> list[dict]:
    rng = np.random.default_rng(0)
    return [make_entry(rng.normal(size=n), freq, f"s{i:02d}") for i, n in enumerate(lengths)]


def test_windows_keep_nine_series_in_ten() -> None:
    h = 6  # three windows need 19 points, two need 13
    assert choose_windows([100] * 10, h) == 3
    assert choose_windows([18] + [100] * 9, h) == 3  # 90% kept
    assert choose_windows([18, 18] + [100] * 8, h) == 2  # 80% with three windows
    assert choose_windows([12, 12] + [100] * 8, h) == 1  # 80% with two as well
    assert choose_windows([5] * 10, h) == 1  # never fewer than one window

    task, total = make_task("toy", _entries([18, 18] + [100] * 8), h, "M", max_series=3)
    assert (task.windows, total, task.skipped) == (2, 10, ())
    assert [e["item_id"] for e in task.dataset] == ["s00", "s01", "s02"]  # first by item_id
    task, _ = make_task("toy", _entries([12, 12] + [100] * 8), h, "M")
    assert task.windows == 1 and len(task.dataset) == 10
    task, _ = make_task("toy", _entries([18] + [100] * 9), h, "M")
    assert task.windows == 3 and task.skipped == ("s00",) and len(task.dataset) == 9


def test_rolling_test_splits_become_one_series_each() -> None:
    """exchange_rate's test split repeats each series once per published window."""
    base = _entries([100, 100])
    rolling = [
        {**e, "target": e["target"][: 90 + 5 * k]} for k in range(3) for e in base
    ]  # prefixes
    assert [len(e["target"]) for e in full_series(rolling)] == [100, 100]


def test_dataset_names_and_groups() -> None:
    datasets = {d.name: d for d in dev_datasets()}
    assert datasets["monthly_dev_h18"].group == "monthly h18"
    assert datasets["monthly_dev_h24"].horizon == 24
    assert datasets["daily_dev_h14"].group == "daily/weekly/hourly"
    assert datasets["m4_yearly_dev"].horizon == 6 and not datasets["m4_yearly_dev"].broad
    assert not datasets["m1_monthly"].broad and datasets["owid_dev_h6"].broad
    assert sum(d.group == "published 7" for d in datasets.values()) == 7


def _run_folder(root: Path, config: dict | None) -> str:
    (root / "checkpoints").mkdir(parents=True)
    ckpt = root / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")
    if config is not None:
        (root / "config.json").write_text(json.dumps(config))
    return str(ckpt)


def test_contamination_guard(tmp_path: Path) -> None:
    clean = _run_folder(tmp_path / "clean", {"name": "v3", "broad_holdout": True})
    dirty = _run_folder(tmp_path / "dirty", {"name": "v2", "broad_holdout": False})
    old = _run_folder(tmp_path / "old", {"name": "v2"})  # before issue 38: no key
    bare = _run_folder(tmp_path / "bare", None)
    assert pretrained_without_broad_holdouts(clean)
    assert pretrained_without_broad_holdouts(f"{clean}+auto-theta")
    for spec in (dirty, old, bare, f"{clean}+{dirty}"):
        assert not pretrained_without_broad_holdouts(spec), spec
    # the v2 models predate the holdouts; the default's members and lagllama-fast do not
    for spec in ("lagllama-v2-small", "lagllama-large", "lagllama-v2-small-seed1+auto-theta"):
        assert not pretrained_without_broad_holdouts(spec), spec
    for spec in ("lagllama-v3-small", "lagllama-fast", "lagllama"):
        assert pretrained_without_broad_holdouts(spec), spec
    assert pretrained_without_broad_holdouts("auto-ets")  # no pretraining at all


def test_model_labels_and_pairs(tmp_path: Path) -> None:
    ckpt = _run_folder(tmp_path / "run", None)
    epoch = Path(ckpt).with_name("epoch=4-step=400.ckpt")
    epoch.write_bytes(b"")
    models = parse_models(f"lagllama-fast,s0={ckpt},{epoch}")
    assert models == {
        "lagllama-fast": "lagllama-fast",
        "s0": ckpt,
        "ckpt:run/epoch=4-step=400": str(epoch),
    }
    assert parse_pairs("s0:ckpt:run/epoch=4-step=400", models) == [
        ("s0", "ckpt:run/epoch=4-step=400")
    ]
    with pytest.raises(ValueError, match="not a:b"):
        parse_pairs("s0:nope", models)
    with pytest.raises(ValueError, match="baseline"):
        parse_models("auto-ets=lagllama-fast")


def _results() -> pd.DataFrame:
    """Seasonal naive scores 1 everywhere; ``m`` 0.5 and 2 in group A, 0.8 in B; ``g``
    (trained on B) 0.5 in A only."""
    rows = [("seasonal-naive", d, 1.0) for d in ("d1", "d2", "d3")]
    rows += [("m", "d1", 0.5), ("m", "d2", 2.0), ("m", "d3", 0.8), ("g", "d1", 0.5)]
    rows += [("g", "d2", 0.5)]
    return pd.DataFrame(
        [
            {"model": m, "dataset": d, "WQL": v, "MASE": 2 * v, "s_per_series": 0.1}
            for m, d, v in rows
        ]
    )


GROUPS = {"d1": "A", "d2": "A", "d3": "B"}


def test_aggregates_per_group() -> None:
    agg = aggregates(_results(), GROUPS).set_index(["scope", "model"])
    assert agg.loc[("A", "m"), "WQL"] == pytest.approx(1.0)
    assert agg.loc[("B", "m"), "WQL"] == pytest.approx(0.8)
    assert agg.loc[("overall", "m"), "WQL"] == pytest.approx(0.8 ** (1 / 3))
    assert agg.loc[("overall", "m"), "MASE"] == pytest.approx(0.8 ** (1 / 3))  # ratios
    assert agg.loc[("overall", "m"), "datasets"] == 3
    # a model left out of group B is aggregated over what it was scored on, and not in B
    assert agg.loc[("overall", "g"), "WQL"] == pytest.approx(0.5)
    assert agg.loc[("overall", "g"), "datasets"] == 2
    assert ("B", "g") not in agg.index


def test_seed_noise_and_pairs() -> None:
    base = _results()
    seeded = base[base["model"] != "seasonal-naive"]
    rows = pd.concat(
        [
            base[base["model"] == "seasonal-naive"].assign(seed=np.nan),
            seeded.assign(seed=0),
            seeded.assign(seed=1, WQL=seeded["WQL"] * 1.1),
        ]
    )
    per_seed = seed_aggregates(rows, GROUPS, ["m", "g"]).set_index(["scope", "model", "seed"])
    assert per_seed.loc[("B", "m", 1), "WQL"] == pytest.approx(0.88)
    spread = seed_spread(per_seed.reset_index())
    assert spread.set_index(["scope", "model"]).loc[("B", "m"), "WQL"] == pytest.approx(0.08)
    assert np.isnan(seed_spread(per_seed.reset_index().query("seed == 0"))["WQL"]).all()

    pair = pair_table(rows, GROUPS, ["m", "g"], "g", "m").set_index("scope")
    assert list(pair.index) == ["overall", "A"]  # only where both were scored
    assert pair.loc["A", "WQL m - g"] == pytest.approx(1.05 - 0.525)
    assert pair.loc["A", "WQL seed spread"] == pytest.approx(0.1)  # m's, the larger
    # the spread is taken on the common datasets: m's over d1 and d2 alone, not with d3
    assert pair.loc["overall", "WQL seed spread"] == pytest.approx(0.1)


def test_resume_skips_cached_rows(tmp_path: Path) -> None:
    path = tmp_path / "work" / "rows.jsonl"
    key = {"model": "m", "spec": "m.ckpt", "dataset": "d1", "seed": 0, "max_series": None}
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"WQL": 0.5, "MASE": float("nan")}

    assert cached_row(read_cache(path), path, key, compute)["WQL"] == 0.5
    with path.open("a") as f:
        f.write('{"model": "m", "WQ')  # a row cut short by a crash
    cache = read_cache(path)
    row = cached_row(cache, path, key, compute)
    assert len(calls) == 1 and row["WQL"] == 0.5 and np.isnan(row["MASE"])
    cached_row(cache, path, {**key, "max_series": 5}, compute)  # other settings: new row
    assert len(calls) == 2 and len(read_cache(path)) == 2


def test_report_marks_trained_on_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(benchmarks.common, "RESULTS", tmp_path)
    datasets = [
        DevDataset("d1", "published 7", "repository"),
        DevDataset("d2", "monthly h18", "monthly_dev", 18),
    ]
    rows = []
    for model, seeds, wql in (("seasonal-naive", [None], 1.0), ("a", [0, 1], 0.6)):
        for seed in seeds:
            for d in datasets:
                rows.append(
                    {
                        "model": model,
                        "dataset": d.name,
                        "seed": seed,
                        "WQL": wql + 0.01 * (seed or 0),
                        "MASE": wql,
                        "s_per_series": 0.2,
                        "runtime_s": 1.0,
                        "num_series": 4,
                        "windows": 3,
                        "too_short": 0,
                        "total_series": 4,
                        "prediction_length": d.horizon or 12,
                        "group": d.group,
                    }
                )
    rows += [
        {**r, "model": "b", "WQL": 0.7} for r in rows if r["model"] == "a" and r["dataset"] == "d1"
    ]
    plan = Plan(
        datasets=datasets,
        models={"a": "auto-ets+lagllama-fast", "b": "lagllama-v2-small"},
        baselines=["seasonal-naive"],
        seeds=[0, 1],
        pairs=[("a", "b")],
        clean={"a": True, "b": False},
        seeded=["a", "b"],
    )
    args = argparse.Namespace(
        num_samples=10,
        batch_size=8,
        context_length=None,
        sampling_precision="32",
        max_series=4,
        timing=False,
        work_dir=tmp_path,
        data_dir=tmp_path,
        output="report_test",
    )
    dev_broad.report(args, plan, pd.DataFrame(rows), ["x (seed 0) on d3"], 1.0)
    text = (tmp_path / "report_test.md").read_text()
    assert "trained on it" in text and "`b` - `a`" in text and "x (seed 0) on d3" in text
    payload = json.loads((tmp_path / "report_test.json").read_text())
    spread = {(r["scope"], r["model"]): r["WQL"] for r in payload["seed_spread"]}
    assert spread[("overall", "a")] == pytest.approx(0.01)
    assert payload["datasets"][1]["windows"] == 3


def test_published_windows_on_real_data(shared_datasets: Path) -> None:
    """M1 yearly needs two windows to keep 90% of its series; exchange_rate's five rolling
    test entries per series become one series with three windows."""
    catalogue = {d.name: d for d in dev_datasets()}
    task, total = load_task(catalogue["m1_yearly"], shared_datasets, None)
    assert (task.windows, total) == (2, 181)
    task, total = load_task(catalogue["exchange_rate"], shared_datasets, None)
    assert (task.windows, total, len(task.dataset)) == (3, 8, 8)
