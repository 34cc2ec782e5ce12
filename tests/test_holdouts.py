"""The broad dev benchmark's holdouts (issue 38) never reach pretraining."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from lagllama.pretraining.config import PretrainConfig
from lagllama.pretraining.corpus import (
    BROAD_HOLDOUTS,
    broad_holdout_of,
    broad_holdouts,
    build_corpus,
    make_entry,
)
from lagllama.pretraining.train import load_corpus

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _write_corpus(root: Path, name: str, rows: list[dict]) -> None:
    (root / "corpus").mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "corpus" / f"{name}.jsonl.gz", "wt") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def test_membership_depends_on_id_freq_length_and_variation_only() -> None:
    rng = np.random.default_rng(0)
    monthly = BROAD_HOLDOUTS[0]
    assert monthly.freq == "M" and "corpus/tsdl" in monthly.sources
    long = [make_entry(rng.normal(size=200), "M", f"tsdl:s{i}") for i in range(400)]
    held = [e for e in long if broad_holdout_of("corpus/tsdl", e) is monthly]
    # the share is kept (binomial noise) and the same ids are chosen from another source order
    assert 0.5 * monthly.share * 400 < len(held) < 1.5 * monthly.share * 400
    assert held == [e for e in reversed(long) if broad_holdout_of("corpus/tsdl", e)][::-1]
    for entry in held:
        short = make_entry(entry["target"][: monthly.min_length - 1], "M", entry["item_id"])
        flat = make_entry(np.ones(200), "M", entry["item_id"])
        yearly = make_entry(entry["target"], "Y", entry["item_id"])
        assert broad_holdout_of("corpus/tsdl", short) is None
        assert broad_holdout_of("corpus/tsdl", flat) is None
        assert broad_holdout_of("corpus/tsdl", yearly) is not monthly
        assert broad_holdout_of("corpus/owid_yearly", entry) is None  # not a monthly source


def test_build_corpus_leaves_holdout_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = [
        {"item_id": f"s{i}", "target": rng.normal(size=150).tolist(), "freq": "M"}
        for i in range(300)
    ]
    _write_corpus(tmp_path, "tsdl", rows)
    kept = build_corpus(["corpus/tsdl"], tmp_path)["corpus/tsdl"]
    everything = build_corpus(["corpus/tsdl"], tmp_path, broad_holdout=False)["corpus/tsdl"]
    held = {e["item_id"] for e in everything if broad_holdout_of("corpus/tsdl", e)}
    assert held, "the fixture should hold some series out"
    assert {e["item_id"] for e in kept} == {e["item_id"] for e in everything} - held


def test_no_holdout_series_reaches_the_v3_pretraining_corpus(shared_datasets: Path) -> None:
    """What ``lagllama pretrain --config configs/pretrain_v3_small.json`` trains on holds no
    holdout series and no NAB stream (OWID left out here: it is only sliced, 0.2%, and slow)."""
    config = PretrainConfig.load(CONFIGS / "pretrain_v3_small.json")
    assert config.broad_holdout and "corpus/nab_hourly" not in config.sources
    config.sources = {
        s: w for s, w in config.sources.items() if s not in ("synthetic", "corpus/owid_yearly")
    }
    config.data_dir = str(shared_datasets)
    corpus = load_corpus(config)
    trained = {e["item_id"] for entries in corpus.values() for e in entries}
    held = broad_holdouts(shared_datasets)
    held_ids = {
        e["item_id"] for h, entries in held.items() if h.name != "owid_dev" for e in entries
    }
    assert len(held_ids) > 900
    assert not trained & held_ids
    for holdout, entries in held.items():
        assert len(entries) >= 25, holdout.name


@pytest.mark.parametrize("name", ["pretrain_v2_small.json", "pretrain_v2_large.json"])
def test_shipped_v2_recipes_say_they_trained_on_the_holdouts(name: str) -> None:
    assert PretrainConfig.load(CONFIGS / name).broad_holdout is False
