"""Shared fixtures: datasets written on the fly (the embedded synthetic city, or hand-made)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from urbanmoe.config import load_config
from urbanmoe.data.synthetic import SynthSettings, generate_city

# The suite runs in two pytest-xdist workers (`-n 2 --dist loadfile`, pyproject.toml): one
# torch thread each, so that the two workers do not oversubscribe two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

# The longest files start first, so that the end-to-end workflow (about 4 minutes) runs beside
# the rest of the suite instead of after it.
LONGEST_FIRST = ("test_workflow.py", "test_workflow_spatial.py", "test_city_shapes.py",
                 "test_recovery.py", "test_dvc.py", "test_tracking.py", "test_tracking_keys.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of ``LONGEST_FIRST`` ahead (a stable sort keeps every other order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def synth_sh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic SH at full size (1,558 regions) with small tiles, generated once per session."""
    out = tmp_path_factory.mktemp("synth")
    return generate_city("SH", out, SynthSettings(seed=0, tile_size=16), progress=False)


@pytest.fixture()
def cfg(tmp_path: Path) -> dict:
    """The default configuration with the feature cache in a temporary folder."""
    return load_config(None, [f"features.cache_dir={tmp_path / 'cache'}"])


def write_dataset(root: Path, table: pd.DataFrame, meta: dict | None = None,
                  fmt: str = "csv") -> Path:
    """Write a hand-made dataset folder; ``meta`` overrides dataset.yaml keys."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"regions.{fmt}"
    if fmt == "csv":
        table.to_csv(root / name, index=False)
    else:
        table.to_parquet(root / name, index=False)
    spec = {"name": "TOY", "table": name,
            "targets": {"carbon": {"transform": "log1p"}, "population": {"transform": "log1p"}}}
    spec.update(meta or {})
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return root


@pytest.fixture()
def toy_table() -> pd.DataFrame:
    """A small valid region table: ids, coordinates, two targets, text, POIs."""
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "region_id": [f"r{i:03d}" for i in range(n)],
        "lat": 31.0 + rng.random(n) * 0.2,
        "lon": 121.0 + rng.random(n) * 0.2,
        "carbon": rng.gamma(2.0, 50.0, n),
        "population": rng.gamma(2.0, 500.0, n),
        "text": [f"region with {k} shops and {k % 3} schools" for k in range(n)],
        "poi_shopping": rng.poisson(5, n),
        "poi_education": rng.poisson(1, n),
    })


@contextmanager
def one_thread_cached_tiles(module: ModuleType) -> Iterator[None]:
    """One torch thread (small convolutions on a shared 2-core machine run faster so) and
    ``module.load_tiles`` reading each dataset's tiles once (load_tiles has its own tests)."""
    from urbanmoe.data.tiles import load_tiles

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cache: dict[tuple[str, int, int], np.ndarray] = {}

    def load(ds, size: int, progress: bool = True, cache_dir=None) -> np.ndarray:  # noqa: ANN001
        key = (str(ds.root), len(ds), size)
        if key not in cache:
            cache[key] = load_tiles(ds, size, progress)
        return cache[key].copy()

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(module, "load_tiles", load)
            yield
    finally:
        torch.set_num_threads(threads)


ROOT_DIR = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT_DIR / "notebooks"


def skip_without_kernel() -> None:
    """Skip (saying why) when papermill has no python3 Jupyter kernel to run notebooks."""
    import importlib.util

    if importlib.util.find_spec("ipykernel") is None:
        pytest.skip("ipykernel is not installed, so papermill has no Jupyter kernel to run")
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no 'python3' Jupyter kernel spec found")


def notebook_parameters(name: str) -> dict:
    """The literals of a notebook's ``parameters`` cell (the first code cell, tagged so)."""
    import json

    nb = json.loads((NOTEBOOKS / name).read_text())
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    params: dict = {}
    exec("".join(code[0]["source"]), params)  # our own notebook's literals
    return params


def snakemake_call(work: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run the project's workflow in ``work`` with this
    interpreter's Snakemake (its bin folder first on PATH, for the rules' own commands)."""
    import sys

    root = ROOT_DIR
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return [str(bin_dir / "snakemake"), "-s", str(root / "Snakefile"), "-d", str(work),
            *args], env


def run_tiny_workflow(work: Path, *args: str) -> str:
    """Run the tiny configuration (.test/config) end to end in ``work``; return its output
    (the run must succeed)."""
    import shutil
    import subprocess

    if not (work / "config").exists():
        shutil.copytree(ROOT_DIR / ".test/config", work / "config")
    cmd, env = snakemake_call(work, *args)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    return done.stdout + done.stderr


# columns of Table 2 and the run summary that measure the machine, not the model
MEASURED = r"mem|time|seconds|dataset_dir"


def same_outputs(ours: Path, reference: Path) -> None:
    """The tiny workflow's outputs in ``ours`` equal those in ``reference``: every artifact of
    paper_figures/ is there, and Table 2 and the run summary hold the same numbers (to the last
    digit) in every column but the measured time, memory and the dataset's path."""
    names = sorted(p.relative_to(reference).as_posix()
                   for p in (reference / "paper_figures").rglob("*") if p.is_file())
    missing = [n for n in names if not (ours / n).is_file()]
    assert not missing, f"missing in {ours}: {missing}"
    for name in ("paper_figures/table2.csv", "results/summary.csv"):
        mine, theirs = (pd.read_csv(d / name, dtype=str, keep_default_na=False)
                        for d in (ours, reference))
        keep = [c for c in theirs.columns if not re.search(MEASURED, c)]
        assert list(mine.columns) == list(theirs.columns), name
        pd.testing.assert_frame_equal(mine[keep], theirs[keep], obj=name)


# The tiny workflow's numbers as recorded (.test/reference/): Table 2 and every ablation row
# (Tables 3-4, Figure 3). A change that moves them is a change in behaviour; where intended,
# record them again with `python tests/record_tiny_reference.py RUN_FOLDER` and say why.
RECORDED = ROOT_DIR / ".test/reference"
NUMBER_KEYS = {"table2.csv": ["dataset", "model", "split", "n_seeds"],
               "ablations_summary.csv": ["dataset", "split", "study", "setting", "value",
                                         "variant", "n_seeds"]}


def paper_numbers(run: Path) -> dict[str, pd.DataFrame]:
    """The keys and every R², RMSE and MAE column of Table 2 and the ablation summary."""
    out = {}
    for name, keys in NUMBER_KEYS.items():
        df = pd.read_csv(run / "paper_figures" / name, keep_default_na=False, na_values=[""])
        metrics = [c for c in df.columns if re.search(r"_(r2|rmse|mae)_(mean|std)$", c)]
        out[name] = df[keys + metrics].sort_values(keys, ignore_index=True)
    return out


#: Same seed, same machine: the same numbers, bit for bit. Another CPU runs other BLAS kernels
#: (MKL picks them per instruction set), whose rounding moves the recorded numbers in the sixth
#: digit (3.4e-6 relative at most, PCA's closed form included, between two x86 machines); a
#: change of behaviour moves them far more.
SAME_NUMBERS_RTOL = 1e-5


def same_numbers(run: Path) -> None:
    """The run's paper numbers equal the recorded ones (to ``SAME_NUMBERS_RTOL``)."""
    for name, mine in paper_numbers(run).items():
        recorded = pd.read_csv(RECORDED / name, keep_default_na=False, na_values=[""])
        pd.testing.assert_frame_equal(mine, recorded, rtol=SAME_NUMBERS_RTOL, atol=1e-9,
                                      obj=name)


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny workflow run here, outside any container or scheduler (for the opt-in
    container and cluster tests to compare against)."""
    work = tmp_path_factory.mktemp("tiny-reference")
    run_tiny_workflow(work, "--cores", "2")
    return work


GROUPS = {"landuse": {"prefix": "landuse_", "transform": "share"},
          "mobility": {"columns": ["flow_in", "flow_out"]}}


def tabular_city(root: Path, n: int = 180, seed: int = 0, coords: bool = False) -> Path:
    """A city shaped like many users': region_id, three targets, 40 POI counts, five land-use
    areas and two mobility flows; no lat/lon, no text, no image. The targets follow the
    tables (plus noise), so a model that reads them can beat the mean. ``coords`` adds lat/lon
    on a regular grid."""
    rng = np.random.default_rng(seed)
    pois = rng.poisson(rng.gamma(1.5, 4.0, (n, 1)) * rng.gamma(1.0, 1.0, (1, 40)))
    landuse = rng.gamma(1.0, 1.0, (n, 5)) * rng.uniform(0.5, 2.0, (n, 1))
    flows = rng.gamma(2.0, 100.0, (n, 2))
    activity = np.log1p(pois.sum(1)) + 0.5 * np.log1p(flows[:, 0])
    table = pd.DataFrame({"region_id": [f"c{i:03d}" for i in range(n)]})
    if coords:
        side = int(np.ceil(np.sqrt(n)))
        table["lat"] = 41.0 + 0.01 * (np.arange(n) // side)
        table["lon"] = -87.7 + 0.01 * (np.arange(n) % side)
    table["carbon"] = np.expm1(activity + 1.5 * landuse[:, 0] / landuse.sum(1)
                               + rng.normal(0, 0.3, n))
    table["population"] = np.expm1(0.8 * activity + rng.normal(0, 0.3, n))
    table["light"] = np.expm1(0.3 * activity + rng.normal(0, 0.2, n))
    for j in range(40):
        table[f"poi_c{j:02d}"] = pois[:, j]
    for j in range(5):
        table[f"landuse_k{j}"] = landuse[:, j]
    table["flow_in"], table["flow_out"] = flows[:, 0], flows[:, 1]
    targets = {t: {"transform": "log1p"} for t in ("carbon", "population", "light")}
    return write_dataset(root, table, {"name": "TAB", "targets": targets,
                                       "feature_groups": GROUPS})


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow database, created once (migrations take seconds)."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}")
    return db


@pytest.fixture()
def uri(tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """MLFLOW_TRACKING_URI set to a fresh copy of the template database in ``tmp_path``."""
    import shutil

    shutil.copy(template_db, tmp_path / "mlflow.db")
    value = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", value)
    return value


def prepared_city(root: Path, cache: Path, overrides: list[str]) -> tuple:
    """(Prepared, config) of a dataset under the default configuration with ``overrides`` and
    the feature cache in ``cache``, seed 0."""
    from urbanmoe.data.table import load_dataset
    from urbanmoe.training.prepare import prepare

    cfg = load_config(None, [f"features.cache_dir={cache}", *overrides])
    return prepare(load_dataset(root), cfg, seed=0, cache_dir=cache, progress=False), cfg


def prepared_sh_fixture(tiles_module: ModuleType, overrides: list[str]) -> Callable:
    """A module-scoped fixture: ``prepared_city`` of the synthetic SH city with ``overrides``,
    under ``one_thread_cached_tiles(tiles_module)`` for the rest of the test module.

    Assign it in a test module, e.g. ``setup = prepared_sh_fixture(common, SMALL)``.
    """

    @pytest.fixture(scope="module")
    def fixture(synth_sh: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
        with one_thread_cached_tiles(tiles_module):
            yield prepared_city(synth_sh, tmp_path_factory.mktemp("cache"), overrides)

    return fixture
