"""The region-table contract: a valid table loads; every bad input gets its one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_dataset

from urbanmoe.cli import main
from urbanmoe.data.table import DataError, load_dataset


def test_valid_table_loads_with_missing_targets_kept_as_nan(tmp_path: Path, toy_table) -> None:
    toy_table.loc[3, "carbon"] = np.nan
    ds = load_dataset(write_dataset(tmp_path / "ds", toy_table, fmt="parquet"))
    assert ds.tasks == ["carbon", "population"] and len(ds) == 40
    assert np.isnan(ds.targets()[3, 0]) and not np.isnan(ds.targets()[3, 1])
    assert ds.poi_columns == ["poi_shopping", "poi_education"]
    assert ds.coords.shape == (40, 2) and ds.image_paths is None


def test_any_modality_may_be_absent(tmp_path: Path, toy_table) -> None:
    minimal = toy_table[["region_id", "carbon", "population"]]
    ds = load_dataset(write_dataset(tmp_path / "ds", minimal))
    assert ds.coords is None and ds.texts is None and ds.poi_columns == []


def _bad(tmp_path: Path, table: pd.DataFrame, meta: dict | None = None) -> str:
    root = write_dataset(tmp_path / "bad", table, meta)
    with pytest.raises(DataError) as err:
        load_dataset(root)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_duplicate_ids(tmp_path: Path, toy_table) -> None:
    toy_table.loc[5, "region_id"] = "r001"
    message = _bad(tmp_path, toy_table)
    assert message.endswith("regions.csv: column 'region_id': duplicate id 'r001'")


def test_non_numeric_target(tmp_path: Path, toy_table) -> None:
    toy_table["carbon"] = toy_table["carbon"].astype(object)
    toy_table.loc[7, "carbon"] = "lots"
    msg = _bad(tmp_path, toy_table)
    assert "column 'carbon': non-numeric value 'lots' (region 'r007')" in msg


def test_negative_target_under_log1p(tmp_path: Path, toy_table) -> None:
    toy_table.loc[2, "population"] = -3.0
    msg = _bad(tmp_path, toy_table)
    assert "column 'population': negative value under log1p -3.0 (region 'r002')" in msg


def test_negative_target_allowed_without_transform(tmp_path: Path, toy_table) -> None:
    toy_table.loc[2, "population"] = -3.0
    meta = {"targets": {"carbon": {"transform": "log1p"}, "population": {"transform": "none"}}}
    assert len(load_dataset(write_dataset(tmp_path / "ok", toy_table, meta))) == 40


def test_missing_target_column_and_empty_table(tmp_path: Path, toy_table) -> None:
    assert "column 'population': target column missing" in _bad(
        tmp_path, toy_table.drop(columns="population"))
    assert "the table is empty" in _bad(tmp_path, toy_table.iloc[:0])


def test_ids_in_one_modality_and_not_another(tmp_path: Path, toy_table) -> None:
    root = tmp_path / "emb"
    emb = pd.DataFrame({"region_id": toy_table["region_id"].iloc[1:], "e0": 1.0, "e1": 2.0})
    root.mkdir()
    emb.to_parquet(root / "image_emb.parquet", index=False)
    write_dataset(root, toy_table, {"embeddings": {"image": "image_emb.parquet"}})
    with pytest.raises(DataError, match=r"image_emb\.parquet: column 'region_id': region 'r000' "
                                        "is in the table but not in this modality"):
        load_dataset(root)
    extra = pd.concat([emb, pd.DataFrame({"region_id": ["r000", "zz"], "e0": 0.0, "e1": 0.0})])
    extra.to_parquet(root / "image_emb.parquet", index=False)
    with pytest.raises(DataError, match="region 'zz' is in this modality but not the table"):
        load_dataset(root)


def test_other_bad_columns(tmp_path: Path, toy_table) -> None:
    bad_lat = toy_table.copy()
    bad_lat.loc[0, "lat"] = 123.0
    assert "column 'lat': out of range 123.0" in _bad(tmp_path, bad_lat)
    bad_poi = toy_table.copy()
    bad_poi.loc[1, "poi_shopping"] = -1
    assert "column 'poi_shopping': negative count -1" in _bad(tmp_path, bad_poi)
    bad_img = toy_table.assign(image_path="tiles/nothing.tif")
    assert "column 'image_path': file not found: 'tiles/nothing.tif'" in _bad(tmp_path, bad_img)


def test_bad_dataset_yaml(tmp_path: Path, toy_table) -> None:
    assert "unknown key 'colour'" in _bad(tmp_path, toy_table, {"colour": "red"})
    msg = _bad(tmp_path, toy_table, {"targets": {"carbon": {"transform": "sqrt"}}})
    assert "targets.carbon.transform: 'sqrt' is not one of" in msg


def test_cli_reports_bad_input_in_one_line_and_exits_nonzero(tmp_path: Path, toy_table,
                                                              capsys) -> None:
    toy_table.loc[5, "region_id"] = "r001"
    root = write_dataset(tmp_path / "bad", toy_table)
    before = (root / "regions.csv").read_bytes()
    code = main(["train", "--dataset", str(root), "--seed", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("urbanmoe: error: ") and "duplicate id 'r001'" in err
    assert (root / "regions.csv").read_bytes() == before  # input untouched
    assert not (tmp_path / "run").exists()  # nothing half-written
