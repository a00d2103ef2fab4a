"""Tabular feature groups (data/groups.py): a city of count tables alone, without coordinates,
text or images, runs every model that can use its groups; the groups are validated in one line
and transformed as counts or shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GROUPS, tabular_city, write_dataset

from urbanmoe.config import load_config
from urbanmoe.data.table import DataError, load_dataset
from urbanmoe.evaluation.run import train_run
from urbanmoe.features.base import has_modality, modality_features
from urbanmoe.features.plan import InputPlan, plan_inputs
from urbanmoe.training.prepare import prepare

FAST = ["train.max_epochs=30", "train.patience=5", "baselines.head_patience=5",
        "baselines.mlp_hidden=32"]

@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tabular_city(tmp_path_factory.mktemp("tabular") / "TAB")


def test_groups_become_modalities_with_their_transforms(city: Path) -> None:
    ds = load_dataset(city)
    assert set(ds.feature_groups) == {"landuse", "mobility", "pois"}
    assert len(ds.feature_groups["pois"].columns) == 40  # the poi_ columns, implicitly
    for name in ("landuse", "mobility", "pois"):
        assert has_modality(ds, name)
    assert not has_modality(ds, "image") and not has_modality(ds, "text")
    shares = modality_features(ds, "landuse", {}, None)
    np.testing.assert_allclose(shares.sum(1), 1.0, rtol=1e-5)
    flows = modality_features(ds, "mobility", {}, None)
    np.testing.assert_allclose(flows, np.log1p(ds.table[["flow_in", "flow_out"]]), rtol=1e-5)


def test_pois_as_a_branch_are_not_also_given_as_p(city: Path, tmp_path: Path) -> None:
    ds = load_dataset(city)
    base = [f"features.cache_dir={tmp_path}"]
    as_branch = prepare(ds, load_config(None, [*base, "model.branches=[pois, landuse]"]), 0,
                        None, progress=False)
    assert as_branch.n_poi == 0 and set(as_branch.branch_dims) == {"pois", "landuse"}
    beside = prepare(ds, load_config(None, [*base, "model.branches=[landuse]"]), 0, None,
                     progress=False)
    assert beside.n_poi == 40  # p of Section 2.3.2, appended to z


def test_auto_inputs_follow_the_city(city: Path, tmp_path: Path) -> None:
    ds = load_dataset(city)
    m = load_config(None, [])["model"]
    assert m["branches"] == "auto"
    # no image or text: the POI counts form a branch; two flows are too few for one, they join z
    assert plan_inputs(ds, m) == InputPlan(("landuse", "pois"), ("mobility",))
    prep = prepare(ds, load_config(None, [f"features.cache_dir={tmp_path}"]), 0, None,
                   progress=False)
    assert prep.branch_dims == {"landuse": 5, "pois": 40} and prep.n_poi == 2
    assert plan_inputs(ds, {**m, "context_max_columns": 1}).context == ()
    listed = plan_inputs(ds, {**m, "branches": ["landuse"], "context": ["mobility"]})
    assert listed == InputPlan(("landuse",), ("mobility",))
    with pytest.raises(ValueError, match="'landuse' is also one of model.branches"):
        plan_inputs(ds, {**m, "branches": ["landuse"], "context": ["landuse"]})
    # the paper's set-up is the auto plan of a city with an image and a text
    synth = pd.DataFrame({"region_id": ["a", "b"], "carbon": [1.0, 2.0], "text": ["x", "y"],
                          "poi_food": [1, 2], "flow_in": [3.0, 4.0]})
    root = write_dataset(tmp_path / "txt", synth, {
        "name": "T", "targets": {"carbon": {}}, "embeddings": {"image": "emb.csv"},
        "feature_groups": {"mobility": {"columns": ["flow_in"]}}})
    (root / "emb.csv").write_text("region_id,e0\na,0.1\nb,0.2\n")
    assert plan_inputs(load_dataset(root), m) == InputPlan(("image", "text"), ("mobility",))


@pytest.mark.parametrize("name", ["urbanmoe", "ridge", "lightgbm", "mlp_mt", "urbanmoe_st", "mmoe",
                                  "ple"])
def test_every_model_that_can_use_tables_runs_on_a_tabular_city(city: Path, tmp_path: Path,
                                                               name: str) -> None:
    """With the default configuration: the inputs follow the city."""
    cfg = load_config(None, [f"features.cache_dir={tmp_path / 'cache'}", f"model.name={name}",
                             *FAST])
    metrics = train_run(city, 0, tmp_path / "run", cfg, progress=False)
    assert "skipped" not in metrics
    assert metrics["log_scale"]["avg"]["r2"] > 0.2, metrics["log_scale"]["avg"]


@pytest.mark.parametrize("name", ["knn", "pca"])
def test_models_that_need_coordinates_or_tiles_say_why(city: Path, tmp_path: Path,
                                                       name: str) -> None:
    cfg = load_config(None, [f"features.cache_dir={tmp_path / 'cache'}", f"model.name={name}"])
    metrics = train_run(city, 0, tmp_path / "run", cfg, progress=False)
    assert metrics["skipped"].endswith("TAB has none"), metrics["skipped"]


@pytest.mark.parametrize(("groups", "message"), [
    ({"landuse": {"prefix": "landuse_", "transform": "z"}},
     "feature_groups.landuse.transform: 'z' is not one of"),
    ({"landuse": {"prefix": "landuse_", "columns": ["landuse_k0"]}},
     "feature_groups.landuse: give exactly one of 'prefix' and 'columns'"),
    ({"landuse": {"prefix": "lu_"}}, "feature_groups.landuse.prefix: no column of the table"),
    ({"mobility": {"columns": ["flow_up"]}},
     "feature_groups.mobility.columns: 'flow_up' is not a column of the table"),
    ({"text": {"prefix": "landuse_"}}, "feature_groups.text: the name must be an identifier"),
    ({"landuse": {"prefix": "landuse_", "weight": 2}},
     "feature_groups.landuse: unknown key 'weight'"),
])
def test_bad_groups_are_one_line_errors_naming_the_file(city: Path, tmp_path: Path,
                                                        groups: dict, message: str) -> None:
    ds = load_dataset(city)
    root = write_dataset(tmp_path / "bad", ds.table, {
        "name": "TAB", "targets": {"carbon": {"transform": "log1p"}}, "feature_groups": groups})
    with pytest.raises(DataError) as err:
        load_dataset(root)
    assert str(err.value).startswith(str(root / "dataset.yaml")) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_negative_or_empty_counts_name_the_column_and_region(city: Path, tmp_path: Path) -> None:
    table = load_dataset(city).table.copy()
    table.loc[3, "landuse_k2"] = -1.0
    root = write_dataset(tmp_path / "neg", table, {
        "name": "TAB", "targets": {"carbon": {"transform": "log1p"}}, "feature_groups": GROUPS})
    with pytest.raises(DataError, match=r"column 'landuse_k2' \(feature group 'landuse'\): "
                                        r"-1.0 at region 'c003' is not a number >= 0"):
        load_dataset(root)
    table.loc[3, "landuse_k2"] = np.nan
    write_dataset(root, table, {"name": "TAB", "targets": {"carbon": {"transform": "log1p"}},
                                "feature_groups": GROUPS})
    with pytest.raises(DataError, match="landuse_k2"):
        load_dataset(root)
