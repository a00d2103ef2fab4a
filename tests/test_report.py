"""The data report: fill values, labels shared between neighbours, and the GDP-fill option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_dataset
from test_urbanclip import BEIJING, _make_city

from urbanmoe.cli import main
from urbanmoe.data.report import dataset_report, looks_like_fill, neighbour_sharing
from urbanmoe.data.sources import import_urbanclip_city
from urbanmoe.data.table import load_dataset


def test_fill_value_is_flagged_and_a_continuous_target_is_not(tmp_path: Path,
                                                              toy_table: pd.DataFrame) -> None:
    table = toy_table.copy()
    table.loc[:7, "population"] = 10000.0  # 8 of 40 regions: a placeholder
    report = dataset_report(load_dataset(write_dataset(tmp_path / "d", table)))
    pop, carbon = report["targets"]["population"], report["targets"]["carbon"]
    assert pop["most_frequent"] == {"value": 10000.0, "count": 8, "share": 0.2}
    assert pop["suspected_fill"] and not carbon["suspected_fill"]
    assert looks_like_fill(9999) and looks_like_fill(-999) and not looks_like_fill(36111.6)


def test_neighbour_sharing_counts_copies_of_a_coarse_pixel() -> None:
    # 2 x 2 regions per 1 km pixel: every nonzero label is shared with a neighbour 0.5 km away
    xy = np.array([(x * 0.5, y * 0.5) for x in range(8) for y in range(8)], dtype=float)
    pixel = (xy[:, 0] // 1.0) * 10 + (xy[:, 1] // 1.0) + 1.0
    shared = neighbour_sharing(pixel, xy, k=4)
    assert shared["exact_shared"] == 1.0 and shared["shared_with_4_nearest"] == 1.0
    assert shared["pair_distance_km"]["median"] == pytest.approx(0.5)
    unique = neighbour_sharing(np.arange(1.0, 65.0), xy, k=4)
    assert unique["exact_shared"] == 0.0 and unique["shared_with_4_nearest"] == 0.0


@pytest.mark.parametrize("policy", ["missing", "keep"])
def test_gdp_fill_policy_and_report_at_import(tmp_path: Path, policy: str) -> None:
    out = import_urbanclip_city(_make_city(tmp_path), tmp_path / f"out-{policy}", gdp_fill=policy)
    ds = load_dataset(out)
    gdp = ds.table["gdp"].to_numpy()
    assert (np.isnan(gdp[1]) if policy == "missing" else gdp[1] == 10000.0)
    report = json.loads((out / "report.json").read_text())
    fill = report["targets"]["gdp"]["fill_set_missing"]
    assert fill == {"value": 10000.0, "count": 1, "policy": policy}
    assert "fill value 10000" in (out / "report.md").read_text()


def test_unknown_gdp_fill_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gdp_fill"):
        import_urbanclip_city(_make_city(tmp_path), tmp_path / "out", gdp_fill="impute")


def test_cli_report_writes_json_and_markdown(tmp_path: Path, toy_table: pd.DataFrame,
                                             capsys: pytest.CaptureFixture) -> None:
    root = write_dataset(tmp_path / "d", toy_table)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert main(["report", "--dataset", str(root), "--out", str(tmp_path / "r" / "TOY")]) == 0
    assert "# Data report: TOY" in capsys.readouterr().out
    assert json.loads((tmp_path / "r/TOY.json").read_text())["regions"] == len(toy_table)
    assert before == {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.skipif(not BEIJING.is_dir(), reason="real UrbanCLIP-toolkit Beijing not at hand")
def test_real_beijing_report_flags_fill_and_shared_pixels(tmp_path: Path) -> None:
    kept = import_urbanclip_city(BEIJING, tmp_path / "Beijing", gdp_fill="keep")
    report = json.loads((kept / "report.json").read_text())
    gdp, carbon = report["targets"]["gdp"], report["targets"]["carbon"]
    assert gdp["most_frequent"]["value"] == 10000.0 and gdp["suspected_fill"]
    assert 0.12 <= gdp["most_frequent"]["share"] <= 0.21  # README of the data: 12-20%
    assert 0.3 <= carbon["neighbours"]["exact_shared"] <= 0.45  # README of the data: ~38%
