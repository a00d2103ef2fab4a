"""The one configuration: defaults, overrides, unknown keys and wrong types."""

from __future__ import annotations

from pathlib import Path

import pytest

from urbanmoe.config import ConfigError, load_config, validate


def test_repository_config_is_valid_and_spells_out_the_schema_defaults() -> None:
    repo = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    assert load_config(repo) == validate({}, "defaults")


def test_defaults_are_the_papers_settings() -> None:
    cfg = validate({}, "defaults")
    m = cfg["model"]
    assert (m["n_specific"], m["n_dual"], m["n_shared"], m["d_r"], m["eps"]) == (8, 2, 4, 6, 0.01)
    assert cfg["train"]["lr"] == pytest.approx(3e-4)
    assert cfg["split"]["fractions"] == [0.6, 0.2, 0.2]


def test_overrides_are_typed_and_validated() -> None:
    cfg = load_config(None, ["model.eps=0.02", "train.seeds=[1, 2]", "split.kind=spatial_block"])
    assert cfg["model"]["eps"] == 0.02 and cfg["train"]["seeds"] == [1, 2]
    with pytest.raises(ConfigError, match=r"model\.eps: 'abc' is not of type 'number'"):
        load_config(None, ["model.eps=abc"])


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  epsilon: 0.1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: model: Additional properties .*'epsilon'"):
        load_config(path)
    with pytest.raises(ConfigError, match="bogus"):
        load_config(None, ["bogus.key=1"])


def test_bad_file_and_bad_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["model.eps"])
    with pytest.raises(ConfigError, match="no experts"):
        load_config(None, ["model.n_specific=0", "model.n_dual=0", "model.n_shared=0"])
