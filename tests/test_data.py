"""Data loading: .tsf, CSV/parquet round trips, validation errors, repository datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gluonts.dataset.common import ListDataset

from lagllama.data import datasets as data
from lagllama.settings import DATA_DIR_ENV


def _entries(dataset) -> list[tuple[str, pd.Period, np.ndarray]]:
    return [(e["item_id"], e["start"], np.asarray(e["target"], float)) for e in dataset]


def _assert_same(a, b) -> None:
    left, right = _entries(a), _entries(b)
    assert [(i, s) for i, s, _ in left] == [(i, s) for i, s, _ in right]
    for (_, _, x), (_, _, y) in zip(left, right):
        np.testing.assert_allclose(x, y, equal_nan=True)


def test_tsf_ausgrid_has_299_weekly_series(shared_datasets: Path) -> None:
    ds = data.read_file(shared_datasets / "raw" / "ausgrid_weekly_sample.tsf")
    entries = list(ds)
    assert len(entries) == 299
    assert data.dataset_freq(ds).startswith("W")
    assert entries[0]["item_id"] == "T1"
    assert entries[0]["start"] == pd.Period("2010-07-01", "W")
    assert all(len(e["target"]) > 100 for e in entries)


@pytest.mark.parametrize("freq", ["D", "h", "W-SUN", "MS", "QS-JAN"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_long_round_trip(tmp_path: Path, fmt: str, freq: str) -> None:
    original = ListDataset(
        [
            {"item_id": "a", "start": pd.Timestamp("2021-01-03"), "target": [1.0, np.nan, 3, 4.5]},
            {"item_id": "b", "start": pd.Timestamp("2021-07-04"), "target": [10.0, 20, 30]},
        ],
        freq=pd.date_range("2021-01-03", periods=2, freq=freq).to_period().freqstr,
    )
    path = tmp_path / f"long.{fmt}"
    getattr(data, f"write_{fmt}")(original, path, layout="long")
    back = data.read_file(path, item_id_column="item_id", target_column="target")
    _assert_same(original, back)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_wide_round_trip(tmp_path: Path, fmt: str) -> None:
    start = pd.Timestamp("2020-01-01")
    original = ListDataset(
        [
            {"item_id": "x", "start": start, "target": [1.0, 2, np.nan, 4, 5]},
            {"item_id": "y", "start": start, "target": [5.0, 4, 3, 2, 1]},
        ],
        freq="M",
    )
    path = tmp_path / f"wide.{fmt}"
    getattr(data, f"write_{fmt}")(original, path, layout="wide")
    frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert list(frame.columns) == ["timestamp", "x", "y"]
    _assert_same(original, data.read_file(path))


def test_gaps_become_nan_and_order_is_fixed() -> None:
    df = pd.DataFrame(
        {"timestamp": ["2020-01-04", "2020-01-01", "2020-01-02", "2020-01-05"], "v": [4, 1, 2, 5]}
    )
    (entry,) = data.from_dataframe(df, target_column="v", freq="D")
    assert entry["start"] == pd.Period("2020-01-01", "D")
    np.testing.assert_array_equal(entry["target"], [1, 2, np.nan, 4, 5])


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "input.csv"
    path.write_text(text)
    return path


def test_missing_time_column_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "date,a\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n")
    with pytest.raises(ValueError, match=r"time column 'timestamp' not found"):
        data.read_file(path)


def test_duplicate_timestamps_name_the_item(tmp_path: Path) -> None:
    rows = "item_id,timestamp,target\nok,2020-01-01,1\nok,2020-01-02,2\nok,2020-01-03,3\n"
    rows += "bad,2020-01-01,1\nbad,2020-01-02,2\nbad,2020-01-02,3\n"
    with pytest.raises(ValueError, match=r"duplicate timestamps for item 'bad'.*2020-01-02"):
        data.read_file(_write(tmp_path, rows), item_id_column="item_id", target_column="target")


def test_text_in_target_names_column_and_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "timestamp,sales\n2020-01-01,1\n2020-01-02,n/a!\n2020-01-03,3\n")
    with pytest.raises(ValueError, match=r"column 'sales' contains non-numeric text, e.g. 'n/a!'"):
        data.read_file(path)


def test_empty_cells_are_missing_not_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "timestamp,sales\n2020-01-01,1\n2020-01-02,\n2020-01-03,3\n")
    (entry,) = data.read_file(path)
    np.testing.assert_array_equal(entry["target"], [1, np.nan, 3])


def test_uninferable_and_unknown_frequency(tmp_path: Path) -> None:
    irregular = _write(tmp_path, "timestamp,a\n2020-01-01,1\n2020-01-02,2\n2020-01-09,3\n")
    with pytest.raises(
        ValueError, match=r"cannot infer the frequency from time column 'timestamp'"
    ):
        data.read_file(irregular)
    with pytest.raises(ValueError, match=r"unknown frequency 'fortnightly'"):
        data.read_file(irregular, freq="fortnightly")
    (entry,) = data.read_file(irregular, freq="D")  # an explicit frequency fills the gap
    assert np.isnan(entry["target"]).sum() == 6


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.read_file(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(ValueError, match="unsupported file type '.xlsx'"):
        data.read_file(tmp_path / "x.xlsx")


def test_load_dataset_from_env_folder(shared_datasets: Path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(shared_datasets))
    assert data.resolve_data_dir() == shared_datasets
    assert data.is_available("m1_quarterly")
    ds = data.load_dataset("m1_quarterly", download=False)
    assert ds.metadata.prediction_length == 8
    assert len(list(ds.test)) == 203


def test_missing_dataset_offline_names_folder(tmp_path: Path, monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(data, "get_dataset", offline)
    with pytest.raises(FileNotFoundError) as err:
        data.load_dataset("m1_yearly", data_dir=tmp_path)
    assert str(tmp_path / "m1_yearly") in str(err.value)
    assert "metadata.json" in str(err.value) and "Name or service not known" in str(err.value)
    with pytest.raises(FileNotFoundError, match="downloads disabled"):
        data.load_dataset("m1_yearly", data_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="unknown dataset 'm1_daily'"):
        data.load_dataset("m1_daily", data_dir=tmp_path)
