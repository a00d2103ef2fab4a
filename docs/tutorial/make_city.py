# A city of tables: 300 districts on a 20 x 15 grid, POI counts, land-use areas, two flows,
# three targets (30 districts unlabelled), and their polygons in a GeoPackage; no lat/lon.
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import yaml
from shapely.geometry import box

rng = np.random.default_rng(7)
n, cols = 300, 20
root = Path("data/mycity")
root.mkdir(parents=True, exist_ok=True)
x, y = np.arange(n) % cols, np.arange(n) // cols
centre = np.exp(-((x - 9.5) ** 2 + (y - 7) ** 2) / 40.0)          # a dense core
pois = rng.poisson(40 * centre[:, None] * rng.gamma(1.0, 1.0, (1, 12)) + 0.5)
land = rng.gamma(1.0, 1.0, (n, 4)) * np.c_[1 + 3 * centre, np.ones(n), np.ones(n), 2 - centre]
flows = rng.gamma(2.0, 200.0 * (0.2 + centre[:, None]), (n, 2))
activity = np.log1p(pois.sum(1)) + 0.4 * np.log1p(flows[:, 0])
table = pd.DataFrame({"region_id": [f"d{i:03d}" for i in range(n)]})
table["co2"] = np.expm1(1.0 + activity + rng.normal(0, 0.3, n))
table["residents"] = np.expm1(2.0 + 0.9 * activity + rng.normal(0, 0.3, n))
table["jobs"] = np.expm1(1.5 + 0.7 * activity + 2 * land[:, 0] / land.sum(1)
                         + rng.normal(0, 0.3, n))
for j, name in enumerate(["food", "shop", "school", "clinic", "bank", "hotel", "park", "gym",
                          "office", "transit", "culture", "repair"]):
    table[f"poi_{name}"] = pois[:, j]
for j, name in enumerate(["commercial", "residential", "industrial", "green"]):
    table[f"landuse_{name}"] = land[:, j].round(3)
table["flow_in"], table["flow_out"] = flows[:, 0].round(1), flows[:, 1].round(1)
table.loc[rng.choice(n, 30, replace=False), ["co2", "residents", "jobs"]] = np.nan
table.to_csv(root / "regions.csv", index=False)
cells = [box(116.0 + 0.01 * i, 39.8 + 0.01 * j, 116.01 + 0.01 * i, 39.81 + 0.01 * j)
         for i, j in zip(x, y, strict=True)]
gpd.GeoDataFrame({"region_id": table["region_id"]}, geometry=cells,
                 crs="EPSG:4326").to_file(root / "districts.gpkg")
(root / "dataset.yaml").write_text(yaml.safe_dump({
    "name": "MyCity", "table": "regions.csv", "geometry": "districts.gpkg",
    "targets": {"co2": {"unit": "t CO2 / yr"}, "residents": {"unit": "people"},
                "jobs": {"unit": "jobs"}},
    "feature_groups": {"landuse": {"prefix": "landuse_", "transform": "share"},
                       "mobility": {"columns": ["flow_in", "flow_out"]}}}, sort_keys=False))
print(f"wrote {root}: {n} districts, {table['co2'].isna().sum()} unlabelled")
