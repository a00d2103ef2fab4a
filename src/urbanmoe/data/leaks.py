"""Label leaks (docs/data.md, "Validation"): a target column must not also be a model input.

A column named as a target in ``dataset.yaml`` that some modality also reads would be given to
the model it is asked to predict (test R² 1.0, and a meaningless result). Every way a column of
the dataset becomes a model input is listed in :func:`input_roles`:

* ``region_id``: the region's id (the per-region lookup embedding, ``region_index``);
* ``lat`` and ``lon``: the coordinates (location-aware region embeddings, spatial context);
* ``text``: the text modality (its encoder reads the column);
* ``image_path``: the image modality (the tiles it names);
* every ``poi_`` column: the ``pois`` group and the POI vector p (``features/base.py``), and the
  LLM's descriptions (``features/llm.py``);
* the columns of each feature group of ``dataset.yaml`` (``data/groups.py``: a prefix or a list);
* the columns of each precomputed embeddings table (``embeddings:``), besides ``region_id``.

Only names are compared: a target equal in value to an input column under another name cannot
be told from a legitimate one, and is not refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from urbanmoe.data.table import ID, POI_PREFIX, DataError

if TYPE_CHECKING:
    from urbanmoe.data.groups import FeatureGroup

# columns whose name alone makes them an input, and the role they play
NAMED_INPUTS = {
    ID: "the region id, which the per-region embedding looks up",
    "lat": "the coordinates lat/lon, which the region embedding and spatial context read",
    "lon": "the coordinates lat/lon, which the region embedding and spatial context read",
    "text": "the text modality",
    "image_path": "the image modality",
}


def input_roles(columns: Iterable[str], groups: Mapping[str, FeatureGroup],
                embedding_columns: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Every input column of a dataset, by name, with the roles that read it.

    ``columns``: the region table's columns; ``groups``: its feature groups (with the implicit
    ``pois``); ``embedding_columns``: each embeddings table's columns, by modality."""
    roles: dict[str, list[str]] = {}

    def add(column: str, role: str) -> None:
        if role not in roles.setdefault(column, []):
            roles[column].append(role)

    for column in columns:
        if column in NAMED_INPUTS:
            add(column, NAMED_INPUTS[column])
        if column.startswith(POI_PREFIX):
            add(column, f"the pois group: every {POI_PREFIX} column")
    for group in groups.values():
        for column in group.columns:
            add(column, f"the feature group {group.name!r}")
    for modality, cols in embedding_columns.items():
        for column in cols:
            if column != ID:
                add(column, f"the embeddings table {modality!r}")
    return roles


def embedding_columns(root: Path, embeddings: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """The column names of each embeddings table of ``dataset.yaml``, read from its header
    alone; a table that cannot be read is left out here (its own validation says why)."""
    out: dict[str, list[str]] = {}
    for modality, rel in (embeddings or {}).items():
        path = root / str(rel)
        try:
            if path.suffix.lower() == ".parquet":
                import pyarrow.parquet as pq

                out[str(modality)] = list(pq.read_schema(path).names)
            elif path.suffix.lower() == ".csv":
                import pandas as pd

                out[str(modality)] = [str(c) for c in pd.read_csv(path, nrows=0).columns]
        except Exception:  # noqa: BLE001 - unreadable: read_embeddings reports it in one line
            continue
    return out


def check_leaks(path: Path, targets: Iterable[str], columns: Iterable[str],
                groups: Mapping[str, FeatureGroup],
                embedding_columns: Mapping[str, list[str]]) -> None:
    """Refuse, in one line naming ``path`` (the ``dataset.yaml``), the column and both roles, the
    first target that is also a model input (:func:`input_roles`)."""
    roles = input_roles(columns, groups, embedding_columns)
    for target in targets:
        if str(target) in roles:
            raise DataError(f"{path}: column {str(target)!r} is both a target and an input "
                            f"({'; '.join(roles[str(target)])}); a target must not be a model "
                            "input")
