"""The embedded synthetic benchmark: three cities in the region-table format (docs/data.md).

The paper's data (Table 1: Sentinel-2 tiles, POIs, ODIAC carbon, WorldPop population, VIIRS
night light for SH, BJ and DC) cannot be downloaded, so the default run uses synthetic twins
of those cities: the same bounding boxes and region counts, with

* latent, spatially autocorrelated urban factors on a region grid (:mod:`.latent`);
* 4-band GeoTIFF tiles rendered from the factors (:mod:`.render`);
* counts in the 15 POI categories (negative binomial, log-rates linear + nonlinear in the
  factors, scaled to Table 1's POI totals) and their ``template`` text description;
* three targets on the log1p scale: ``y_log = max(f_t(factors) + e_t, 0)``, where ``f_t``
  mixes a nonlinear component shared by all tasks, components shared by each pair of tasks,
  a task-specific hidden factor and a location-only factor, and ``e_t`` is Gaussian noise of
  known per-region variance. The recorded noise ceiling (:func:`noise_ceiling`) is the best
  R² any model could reach.

Everything derives from ``(settings.seed, city name)``: the same seed gives byte-identical
tables and tiles, and cities are independent streams.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.data.describe import describe_template
from urbanmoe.data.latent import Grid, make_factors, make_grid, softplus, standardise
from urbanmoe.data.poi import POI_CATEGORIES, POI_COLUMNS
from urbanmoe.data.render import render_tiles
from urbanmoe.errors import ConfigError
from urbanmoe.io import atomic_path, claim
from urbanmoe.readers import dump_yaml

GENERATOR = "urbanmoe.synth"
VERSION = 1
TASKS: tuple[str, ...] = ("carbon", "population", "light")
UNITS: dict[str, str] = {"carbon": "t CO2 / yr", "population": "people", "light": "nW / cm2 / sr"}


@dataclass(frozen=True)
class City:
    """One benchmark city: Table 1's coverage and counts plus its generator profile."""

    name: str
    city: str
    bbox: tuple[float, float, float, float]  # min_lat, min_lon, max_lat, max_lon
    n_regions: int
    n_pois: int  # Table 1 POI total; the synthetic counts are scaled to it in expectation
    n_centres: int  # urban centres (1 main + sub-centres)
    water_fraction: float  # share of regions that are mostly water
    coast: tuple[float, float]  # (north, east) strength of the sea-ward trend of water
    noise_scale: tuple[float, float, float]  # per-task multiplier of the noise shares


CITIES: dict[str, City] = {
    "SH": City("SH", "Shanghai", (30.70, 120.90, 31.63, 121.95), 1558, 1_100_075,
               n_centres=3, water_fraction=0.10, coast=(0.3, 1.2), noise_scale=(1.0, 0.9, 1.2)),
    "BJ": City("BJ", "Beijing", (39.65, 115.82, 40.65, 117.11), 2310, 541_407,
               n_centres=4, water_fraction=0.03, coast=(0.0, 0.0), noise_scale=(1.3, 0.85, 0.9)),
    # Table 1 prints this box for "Washington D.C.", but 40.57-41.54N, 72.50-73.82W actually
    # covers Long Island Sound (Long Island / Connecticut). Kept exactly as printed.
    "DC": City("DC", "Washington D.C.", (40.57, -73.82, 41.54, -72.50), 1091, 164_942,
               n_centres=2, water_fraction=0.22, coast=(0.2, 0.0), noise_scale=(1.4, 1.0, 0.8)),
}
"""The Table 1 cities, by short name."""

# Noise-free log1p level of a land region: mean + sd * z (z standardised), kept above 0 and
# softly below a cap (point-source carbon, dense-core population, VIIRS saturation).
_LEVEL = {"carbon": (7.0, 1.7, 14.0), "population": (7.6, 2.3, 12.5), "light": (2.0, 0.7, 4.6)}
# Variance shares of the signal components per task (shared, pairs, specific, location).
_WEIGHTS = {
    "carbon": {"shared": 0.45, "carbon_population": 0.12, "carbon_light": 0.18,
               "hidden_carbon": 0.15, "location": 0.10},
    "population": {"shared": 0.45, "carbon_population": 0.20, "population_light": 0.15,
                   "hidden_population": 0.12, "location": 0.08},
    "light": {"shared": 0.50, "carbon_light": 0.10, "population_light": 0.20,
              "hidden_light": 0.12, "location": 0.08},
}
# POI log-rate model: base share and loadings on (built, commerce, residential, industry,
# green, hidden_population, hidden_carbon, hidden_light), one row per category.
_POI_DRIVERS = ("built", "commerce", "residential", "industry", "green",
                "hidden_population", "hidden_carbon", "hidden_light")
_POI_MODEL = {
    "catering": (0.16, (0.7, 0.8, 0.3, 0.0, -0.3, 0.0, 0.0, 0.0)),
    "shopping": (0.20, (0.7, 1.0, 0.2, 0.0, -0.3, 0.0, 0.0, 0.0)),
    "life_services": (0.14, (0.7, 0.3, 0.8, 0.0, -0.3, 0.2, 0.0, 0.0)),
    "sports_leisure": (0.04, (0.4, 0.2, 0.3, 0.0, 0.4, 0.0, 0.0, 0.0)),
    "medical": (0.04, (0.8, 0.2, 0.5, 0.0, -0.2, 0.0, 0.0, 0.0)),
    "accommodation": (0.03, (0.6, 0.9, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0)),
    "scenic_spots": (0.015, (0.0, 0.3, -0.2, -0.2, 0.9, 0.0, 0.0, 0.0)),
    "residential": (0.05, (0.5, 0.0, 1.1, -0.3, -0.2, 0.5, 0.0, 0.0)),
    "government": (0.03, (0.9, 0.2, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0)),
    "education_culture": (0.04, (0.6, 0.2, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0)),
    "transportation": (0.06, (0.5, 0.2, 0.2, 0.3, -0.2, 0.0, 0.0, 0.6)),
    "finance": (0.02, (1.1, 0.9, 0.0, 0.0, -0.3, 0.0, 0.0, 0.0)),
    "companies": (0.09, (0.4, 0.5, -0.2, 0.9, -0.3, 0.0, 0.5, 0.0)),
    "business": (0.04, (0.9, 0.7, 0.0, 0.3, -0.3, 0.0, 0.0, 0.0)),
    "public_facilities": (0.03, (0.4, 0.0, 0.4, 0.0, 0.3, 0.0, 0.0, 0.0)),
}


@dataclass(frozen=True)
class SynthSettings:
    """Knobs of the synthetic benchmark generator (defaults give the project's default run)."""

    seed: int = 0
    tile_size: int = 32  # tile width = height in pixels (the paper's tiles are 200)
    cities: tuple[str, ...] = ("SH", "BJ", "DC")
    noise_share: tuple[float, float, float] = (0.12, 0.10, 0.13)  # noise / total variance
    # Multiplier of every latent field's length scale (cells). 2.0 is calibrated on the real
    # UrbanCLIP-toolkit Beijing, where location alone (kNN-5 on lat/lon, random split) reaches
    # R² 0.856 and beats models on the captions: at 2.0, kNN-5 reaches about 0.83 on synthetic
    # SH and ridge on the features about 0.77; at 1.0 location was weaker than the features.
    length_scale: float = 2.0
    grid_slack: float = 1.3  # grid cells per region before the outline drops the extra ones
    poi_gain: float = 0.6  # multiplier of the POI log-rate loadings (spread of POI density)
    poi_dispersion: float = 1.5  # negative-binomial shape (smaller = more overdispersed)
    poi_coverage_sd: float = 0.35  # sd of the per-region log factor shared by all categories

    def __post_init__(self) -> None:
        """Reject settings the generator cannot honour, with the offending value."""
        if self.tile_size < 1:
            raise ConfigError(f"tile_size must be >= 1, got {self.tile_size}")
        if len(self.noise_share) != len(TASKS) or not all(0 <= v < 0.9 for v in self.noise_share):
            raise ConfigError(f"noise_share needs 3 values in [0, 0.9), got {self.noise_share}")
        if self.length_scale <= 0 or self.grid_slack < 1 or self.poi_dispersion <= 0:
            raise ConfigError("length_scale and poi_dispersion must be > 0, grid_slack >= 1")


@dataclass(frozen=True)
class CitySample:
    """Everything drawn for one city before writing (also used by tests and diagnostics)."""

    city: City
    grid: Grid
    region_id: np.ndarray  # (N,) str
    factors: dict[str, np.ndarray]  # latent factors per region
    poi: np.ndarray  # (N, 15) int64 counts in POI_CATEGORIES order
    signal: np.ndarray  # (N, 3) noise-free log1p targets, TASKS order
    sigma: np.ndarray  # (N, 3) noise standard deviation per region and task
    y_log: np.ndarray  # (N, 3) realised log1p targets
    noise_ceiling: dict[str, float]  # per task, see noise_ceiling()


def city_streams(seed: int, name: str) -> list[np.random.Generator]:
    """Independent generators (grid+factors, POIs, targets, tiles) for (seed, city name)."""
    root = np.random.SeedSequence([seed, zlib.crc32(name.encode("utf-8"))])
    return [np.random.default_rng(s) for s in root.spawn(4)]


def _signal_components(f: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Standardised signal components: shared by all, by each task pair, task-specific, location.

    The shared component is nonlinear (urbanity with a housing interaction); the pair
    components are residential heating (carbon-population), industry (carbon-light) and
    commerce / night life (population-light); carbon's specific factor is heavy-tailed.
    """
    u = f["urbanity"]
    return {
        "shared": standardise(u * (1.0 + 0.4 * f["residential"]) + 0.3 * f["built"]),
        "carbon_population": standardise(softplus(f["residential"]) + 0.3 * f["residential"]
                                         * f["built"]),
        "carbon_light": standardise(softplus(1.5 * f["industry"])),
        "population_light": standardise(np.tanh(f["commerce"]) + 0.4 * f["commerce"] * u),
        "hidden_carbon": standardise(softplus(2.5 * (f["hidden_carbon"] - 1.0))),
        "hidden_population": standardise(f["hidden_population"] * (0.7 + 0.3 * u)),
        "hidden_light": f["hidden_light"],
        "location": f["location"],
    }


def noise_ceiling(y_log: np.ndarray, sigma: np.ndarray) -> float:
    """Best attainable R² on the log1p scale: ``1 - mean(sigma_i^2) / Var(y_log)``.

    Computed on the realised sample. It is an upper bound: only the noise is irreducible
    here, while parts of the signal (hidden and location-only factors) are observed only
    partially or not at all through the modalities, so real models stay below it.
    """
    return float(1.0 - np.mean(sigma**2) / np.var(y_log))


def draw_targets(
    f: Mapping[str, np.ndarray], city: City, settings: SynthSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (signal, sigma, y_log), each (N, 3) in TASKS order.

    ``signal = land^1.5 * level_t(mean + sd * z_t)``: ``z_t`` the standardised weighted sum
    of the components, ``level_t`` a smooth map kept above 0 and softly below the task's cap,
    ``land`` the non-water share, so water regions are near zero. The noise sd
    is ``sigma_t * (0.3 + 0.7 land)`` with ``sigma_t`` set so the noise holds about the
    city's noise share of the total variance; the draws are rescaled so their realised mean
    square equals ``mean(sigma_i^2)`` exactly; ``y_log = max(signal + noise, 0)``.
    """
    comps = _signal_components(f)
    land = 1.0 - f["water"]
    signal, sigma, y_log = (np.empty((len(land), len(TASKS))) for _ in range(3))
    for t, task in enumerate(TASKS):
        z = standardise(sum(np.sqrt(w) * comps[c] for c, w in _WEIGHTS[task].items()))
        mean, sd, cap = _LEVEL[task]
        level = cap - softplus(cap - softplus(mean + sd * z, beta=2.0), beta=1.0)
        signal[:, t] = land**1.5 * np.maximum(level, 0.0)
        share = min(settings.noise_share[t] * city.noise_scale[t], 0.9)
        shape = 0.3 + 0.7 * land
        scale = np.sqrt(share / (1.0 - share) * np.var(signal[:, t]) / np.mean(shape**2))
        sigma[:, t] = scale * shape
        noise = sigma[:, t] * rng.standard_normal(len(land))
        if scale > 0:  # exact realised noise power
            noise *= np.sqrt(np.mean(sigma[:, t] ** 2) / np.mean(noise**2))
        y_log[:, t] = np.maximum(signal[:, t] + noise, 0.0)
    return signal, sigma, y_log


def draw_pois(
    f: Mapping[str, np.ndarray], city: City, settings: SynthSettings, rng: np.random.Generator
) -> np.ndarray:
    """Draw POI counts (N, 15) int64 from a negative binomial with factor-driven log-rates.

    ``log rate = log base share + loadings . drivers + 0.3 max(built, 0)^2 + 2 log(land) +
    coverage``, with city-specific jitter on the loadings and a per-region coverage effect
    shared by all categories; rates are scaled so the expected total equals Table 1's POIs.
    Counts are Poisson with Gamma(shape = poi_dispersion) mixing: heavy-tailed totals and many
    zeros on water and green land.
    """
    drivers = np.stack([f[d] for d in _POI_DRIVERS], axis=1)  # (N, 8)
    base = np.log([_POI_MODEL[c][0] for c in POI_CATEGORIES])
    load = np.array([_POI_MODEL[c][1] for c in POI_CATEGORIES])
    load = load + rng.normal(0.0, 0.1, load.shape) * (load != 0)
    land = np.clip(1.0 - f["water"], 1e-6, 1.0)
    coverage = rng.normal(0.0, settings.poi_coverage_sd, (len(land), 1))
    core = np.clip(f["built"], 0.0, 3.0)[:, None] ** 2
    log_rate = (base[None, :] + settings.poi_gain * (drivers @ load.T + 0.25 * core)
                + 2.0 * np.log(land)[:, None] + coverage)
    rate = np.exp(log_rate - log_rate.max())
    rate *= city.n_pois / rate.sum()
    shape = settings.poi_dispersion
    return rng.poisson(rate * rng.gamma(shape, 1.0 / shape, rate.shape)).astype(np.int64)


def simulate_city(name: str, settings: SynthSettings) -> CitySample:
    """Draw one city's grid, factors, POIs and targets (no tiles, nothing written)."""
    city = CITIES[name]
    rng_grid, rng_poi, rng_y, _ = city_streams(settings.seed, name)
    grid = make_grid(city.bbox, city.n_regions, settings.grid_slack, rng_grid)
    factors = make_factors(grid, n_centres=city.n_centres, water_fraction=city.water_fraction,
                           coast=city.coast, length_scale=settings.length_scale, rng=rng_grid)
    poi = draw_pois(factors, city, settings, rng_poi)
    signal, sigma, y_log = draw_targets(factors, city, settings, rng_y)
    ceiling = {t: noise_ceiling(y_log[:, i], sigma[:, i]) for i, t in enumerate(TASKS)}
    ids = np.array([f"{name}_{k:06d}" for k in range(city.n_regions)])
    return CitySample(city, grid, ids, factors, poi, signal, sigma, y_log, ceiling)


def region_table(sample: CitySample, image_paths: list[str]) -> pd.DataFrame:
    """Assemble the region table: id, lat/lon, image path, text, POI counts, targets."""
    city, grid = sample.city, sample.grid
    texts = [
        describe_template(dict(zip(POI_CATEGORIES, row.tolist(), strict=True)),
                          city=city.city, lat=float(la), lon=float(lo))
        for row, la, lo in zip(sample.poi, grid.lat, grid.lon, strict=True)
    ]
    table = pd.DataFrame({"region_id": sample.region_id, "lat": grid.lat, "lon": grid.lon,
                          "image_path": image_paths, "text": texts})
    for j, col in enumerate(POI_COLUMNS):
        table[col] = sample.poi[:, j]
    for t, task in enumerate(TASKS):
        table[task] = np.maximum(np.expm1(sample.y_log[:, t]), 0.0).astype(np.float64)
    return table


def dataset_spec(sample: CitySample, settings: SynthSettings) -> dict:
    """The ``dataset.yaml`` content of a synthetic city (keys as in docs/data.md)."""
    city = sample.city
    return {
        "name": city.name,
        "city": city.city,
        "table": "regions.parquet",
        "targets": {t: {"transform": "log1p", "unit": UNITS[t]} for t in TASKS},
        "bbox": [float(v) for v in city.bbox],
        "noise_ceiling": {t: round(v, 4) for t, v in sample.noise_ceiling.items()},
        "source": {"generator": GENERATOR, "seed": int(settings.seed),
                   "tile_size": int(settings.tile_size), "version": VERSION},
    }


def generate_city(
    name: str, out_dir: Path, settings: SynthSettings, progress: bool = True
) -> Path:
    """Write the synthetic city ``name`` to ``out_dir/name/`` atomically and return that path
    (``io.atomic_path``: an interrupted run never leaves a folder that looks complete, and only
    a dataset folder the project wrote there before is replaced)."""
    if name not in CITIES:
        raise ConfigError(f"unknown synthetic city {name!r}; choose from {sorted(CITIES)}")
    final = Path(out_dir) / name
    with atomic_path(final, "dataset") as tmp:
        tmp.mkdir()
        sample = simulate_city(name, settings)
        rng_tiles = city_streams(settings.seed, name)[3]
        paths = render_tiles(tmp / "tiles", sample.region_id, sample.grid, sample.factors,
                             settings.tile_size, rng_tiles, progress=progress, label=name)
        region_table(sample, paths).to_parquet(tmp / "regions.parquet", engine="pyarrow",
                                               index=False)
        with open(tmp / "dataset.yaml", "w", encoding="utf-8") as fh:
            fh.write(dump_yaml(dataset_spec(sample, settings)))
    return final


def generate_benchmark(out_dir: Path, settings: SynthSettings, progress: bool = True) -> list[Path]:
    """Write every city of ``settings.cities`` under ``out_dir``; return the dataset folders."""
    claim([Path(out_dir) / name for name in settings.cities], "dataset")
    paths = []
    for name in settings.cities:
        start = time.perf_counter()
        paths.append(generate_city(name, out_dir, settings, progress=progress))
        if progress:
            print(f"synth: {name} written to {paths[-1]} in {time.perf_counter() - start:.1f}s")
    return paths
