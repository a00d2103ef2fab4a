"""The ``urbanmoe`` command: thin verbs over the library.

Every verb reads the one configuration (``--config``, default ``config/config.yaml`` when present,
else the schema's defaults) with ``--set key=value`` overrides. Bad input ends with one line on
stderr naming the file, field and value, and exit status 2; a bug says so, keeps its traceback
and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from urbanmoe import commands
from urbanmoe.arguments import EXIT_BAD_INPUT, Parser, degrees, metres, patch_px, seed
from urbanmoe.config import load_config
from urbanmoe.errors import InputError, OutputError
from urbanmoe.io import check_writable
from urbanmoe.ownership import FOLDER_KINDS, check_output, overlap
from urbanmoe.redact import install_log_filter, redact, shown

EXIT_BUG = 1
OUTPUT_FLAGS = ("out", "maps", "record", "cache")  # checked writable before any work
TRANSFER_PARTS = ("all", "west", "east", "south", "north")  # evaluation/transfer.py: PARTS


@dataclass(frozen=True)
class VerbPaths:
    """What a verb writes and reads, by option name, checked before any work (docs/cli.md,
    "What urbanmoe never does"): ``writes`` are (option, kind, suffixes) of outputs that may
    replace only what the project wrote there as that kind (``ownership.refusal``); ``reads``
    are inputs read whole, which no output may be, contain or lie inside; ``searched`` are
    folders searched for inputs (an output may lie inside them); ``containers`` are folders
    outputs are written into, which may not be or lie inside an input."""

    writes: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    reads: tuple[str, ...] = ()
    searched: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()


ONE = ("",)
PATHS = {
    "synth": VerbPaths(containers=("out",)),
    "features": VerbPaths((("out", "features", ONE),), ("dataset",)),
    "import-urbanclip": VerbPaths((("out", "dataset", ONE),), ("city_dir",)),
    "import-hafusion": VerbPaths((("out", "dataset", ONE),), ("city_dir",)),
    "claims": VerbPaths((("out", "claims", ONE),), searched=("figures",)),
    "report": VerbPaths((("out", "data report", (".json", ".md")),), ("dataset",)),
    "build": VerbPaths((("out", "dataset", ONE),), ("imagery", "pois", "labels", "poi_mapping")),
    "describe": VerbPaths((("out", "dataset", ONE),), ("dataset",), containers=("cache",)),
    "train": VerbPaths((("out", "run", ONE),), ("dataset",)),
    "transfer": VerbPaths((("out", "run", ONE),), ("source", "target")),
    "predict": VerbPaths((("out", "predictions", ONE),), ("runs", "dataset"),
                         containers=("maps",)),
    "spatial-report": VerbPaths(searched=("runs", "transfer"), containers=("out",)),
    "aggregate": VerbPaths((("out", "summary", ONE),), searched=("runs",)),
    "track": VerbPaths((("record", "record", ONE),), ("runs",)),
    "provenance": VerbPaths((("out", "provenance", ONE),), ("artifacts", "runs", "records")),
}
CACHES = (("features", "cache_dir"), ("baselines", "cache_dir"))  # config folders written into


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None,
                   help="configuration file (default: config/config.yaml if present)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set model.eps=0.02 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _verb(p: argparse.ArgumentParser, func: Callable[..., int]) -> None:
    """The common options of every verb, and the function that runs it."""
    _common(p)
    p.set_defaults(func=func)


def _dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", type=Path, required=True, help="dataset folder (docs/data.md)")


def _run_options(p: argparse.ArgumentParser) -> None:
    """--seed, --out, --variant and the common options of the verbs that write run folders."""
    p.add_argument("--seed", type=seed, nargs="+", required=True,
                   help="seed(s) of the split and the model; one run folder each")
    p.add_argument("--out", type=Path, required=True,
                   help="run folder to write; with several seeds a pattern holding {seed}")
    p.add_argument("--variant", default=None, metavar="LABEL",
                   help="a run variant, MODEL[@key=value...] (e.g. urbanmoe@model.d_r=4): sets "
                        "model.name and the overrides, and is recorded in metrics.json")
    _common(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    parser = Parser(
        prog="urbanmoe",
        description="UrbanMoE (WWW '26): multi-task urban region profiling with a sparse "
                    "multi-modal mixture of experts.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    # Each verb's parser is declared flat, one block of add_argument calls per verb, on purpose:
    # the blocks look alike, but `urbanmoe VERB --help` then reads straight off the source. What
    # the verbs really share is in _common, _verb, _dataset and _run_options.

    p = verbs.add_parser("synth", help="write the embedded synthetic benchmark (SH, BJ, DC)",
                         description="Write the synthetic cities named after Table 1 "
                                     "(region tables, image tiles, POIs, text, labels).")
    p.add_argument("--out", type=Path, required=True, help="folder to write one dataset per city")
    p.add_argument("--seed", type=seed, default=None, help="generator seed (default: synth.seed)")
    _verb(p, commands.cmd_synth)

    p = verbs.add_parser("features", help="extract the features of one dataset (cached)",
                         description="Encode every modality of a dataset with the configured "
                                     "encoders into a feature folder; train reads it with "
                                     "--set features.cache_dir=FOLDER.")
    _dataset(p)
    p.add_argument("--out", type=Path, required=True, help="feature folder to write")
    _verb(p, commands.cmd_features)

    p = verbs.add_parser("import-urbanclip", help="a UrbanCLIP-toolkit city as a dataset",
                         description="Turn a UrbanCLIP-toolkit city (<City>.csv, "
                                     "<City>_captions.json, tiles/) into a dataset folder in "
                                     "the region-table format (docs/urbanclip.md).")
    p.add_argument("--city-dir", type=Path, required=True, help="folder holding <City>.csv")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--city", default=None, help="city name (default: the folder's name)")
    p.add_argument("--require-images", action="store_true",
                   help="fail unless every tile named in the CSV is present")
    p.add_argument("--gdp-fill", choices=["missing", "keep"], default=None,
                   help="GDP's fill value 10000.0: set missing (excluded from loss and "
                        "metrics) or keep it (default: data.urbanclip_gdp_fill)")
    _verb(p, commands.cmd_import_urbanclip)

    p = verbs.add_parser("import-hafusion", help="a HAFusion city (ICDE 2024) as a dataset",
                         description="Turn a HAFusion city folder (data_NY, data_Chi, data_SF: "
                                     "POI and land-use counts, labels, region x region "
                                     "matrices) into a dataset folder (docs/hafusion.md).")
    p.add_argument("--city-dir", type=Path, required=True, help="folder holding poi_dist.npy")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--name", default=None, help="dataset name (default: NY, Chi or SF)")
    _verb(p, commands.cmd_import_hafusion)

    p = verbs.add_parser("claims", help="check the paper's claims against the drawn tables",
                         description="Read table2.csv, table2_seeds.csv, "
                                     "ablations_summary.csv, ablations_seeds.csv (and the "
                                     "*_bootstrap.csv replicates), figure5_weights.csv and "
                                     "sparsity.csv in a figures folder and write claims.md: "
                                     "each claim of Sections 3.4-3.6 and Appendices C-D held, "
                                     "not held or inconclusive by its paired interval over "
                                     "seeds (verdicts.confidence, verdicts.min_pairs).")
    p.add_argument("--figures", type=Path, default=Path("paper_figures"),
                   help="folder with the generated tables")
    p.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    _verb(p, commands.cmd_claims)

    p = verbs.add_parser("report", help="a data report of one dataset (fill values, labels "
                                        "shared between neighbours)",
                         description="Report each target's missing values, zeros, most "
                                     "frequent value (suspected fill values) and how often "
                                     "labels repeat exactly in neighbouring regions (random "
                                     "splits leak them). Writes STEM.json and STEM.md.")
    _dataset(p)
    p.add_argument("--out", type=Path, required=True, help="output stem (STEM.json, STEM.md)")
    _verb(p, commands.cmd_report)

    p = verbs.add_parser("build", help="build a city's dataset from raw rasters and POIs",
                         description="Cut the city's box into patches (Section 3.1), write "
                                     "Sentinel-2 tiles, count POIs in 15 categories, aggregate "
                                     "label rasters per patch (docs/build.md).")
    p.add_argument("--city", choices=["SH", "BJ", "DC"], default=None,
                   help="a Table 1 city (its coverage box)")
    p.add_argument("--bbox", type=degrees, nargs=4, default=None,
                   metavar=("MIN_LAT", "MIN_LON", "MAX_LAT", "MAX_LON"), help="any other box")
    p.add_argument("--name", default=None, help="dataset name (default: --city)")
    p.add_argument("--imagery", type=Path, nargs="+", required=True,
                   help="Sentinel-2 L2A GeoTIFF mosaic or tiles (any CRS)")
    p.add_argument("--pois", type=Path, required=True,
                   help="POI table, CSV or Parquet: lon, lat, category, name")
    p.add_argument("--label", dest="labels", action="append", required=True,
                   metavar="NAME=PATH:AGG:UNIT",
                   help="a label raster, e.g. carbon=odiac.tif:sum:t (repeatable)")
    p.add_argument("--poi-mapping", type=Path, default=None,
                   help="category mapping YAML (default: the packaged one)")
    p.add_argument("--patch-px", type=patch_px, default=200, help="patch side in pixels")
    p.add_argument("--resolution-m", type=metres, default=10.0,
                   help="ground size of a pixel in metres")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    _verb(p, commands.cmd_build)

    p = verbs.add_parser("describe", help="write each region's text from its POIs (LLM)",
                         description="Copy a dataset with its text column written from its "
                                     "POIs by the template or an OpenAI-compatible LLM "
                                     "(Appendix E; docs/describe.md).")
    p.add_argument("--dataset", type=Path, required=True, help="dataset folder to read")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--backend", choices=["template", "openai"], default="template")
    p.add_argument("--cache", type=Path, default=Path(".cache/urbanmoe/llm"),
                   help="answers cached by prompt hash (resumes an interrupted run)")
    _verb(p, commands.cmd_describe)

    p = verbs.add_parser("train", help="train and evaluate a model on one dataset and seed",
                         description="Train the configured model (model.name) on a dataset "
                                     "folder, evaluate on its test split, write a run folder.")
    _dataset(p)
    _run_options(p)
    p.set_defaults(func=commands.cmd_train)

    p = verbs.add_parser("transfer", help="train on one city, test on another (no labels there)",
                         description="Cross-city transfer: train the configured model on the "
                                     "source city and test it on every region of the target "
                                     "(docs/spatial.md). Region embedding, spatial lag and "
                                     "ensembles are turned off; kNN is skipped.")
    p.add_argument("--source", type=Path, required=True, help="dataset folder to train on")
    p.add_argument("--target", type=Path, required=True, help="dataset folder to test on")
    p.add_argument("--source-part", choices=TRANSFER_PARTS, default="all",
                   help="only the regions west/east of the median longitude or south/north of "
                        "the median latitude (default: all)")
    p.add_argument("--target-part", choices=TRANSFER_PARTS, default="all", help="as --source-part")
    _run_options(p)
    p.set_defaults(func=commands.cmd_transfer)

    p = verbs.add_parser("predict", help="predict every region with trained runs, with maps",
                         description="Apply run folders (one, or a folder of one model's seeds) "
                                     "to every region of a dataset, unlabelled ones included: "
                                     "predictions.{csv,parquet} (mean and spread over seeds, "
                                     "in units and on the log1p scale), regions.geojson, "
                                     "predict.json, and maps of the predictions and of the "
                                     "test residuals (PNG, PDF).")
    p.add_argument("--runs", type=Path, nargs="+", required=True,
                   help="run folders, or folders holding one model's seed run folders")
    p.add_argument("--dataset", type=Path, default=None,
                   help="dataset folder (default: the one the runs were trained on)")
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    p.add_argument("--maps", type=Path, default=None,
                   help="folder for the maps (default: --out)")
    _verb(p, commands.cmd_predict)

    p = verbs.add_parser("spatial-report", help="tables and figure of the spatial context",
                         description="From spatial-context and transfer run folders, write "
                                     "spatial_context.{csv,md,tex} (paired per-seed differences "
                                     "to the best kNN), spatial_context_tasks.{png,pdf} and "
                                     "transfer.{csv,md,tex} (docs/spatial.md).")
    p.add_argument("--runs", type=Path, nargs="+", required=True,
                   help="folders holding the spatial-context run folders")
    p.add_argument("--transfer", type=Path, nargs="*", default=[],
                   help="folders holding transfer run folders")
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    _verb(p, commands.cmd_spatial_report)

    p = verbs.add_parser("aggregate", help="mean and std over seeds of run folders",
                         description="Collect every metrics.json under the given folders and "
                                     "write mean and std per dataset, model and split as CSV; "
                                     "print a Markdown view.")
    p.add_argument("runs", type=Path, nargs="+", help="folders to search for run folders")
    p.add_argument("--out", type=Path, required=True, help="summary CSV to write")
    _verb(p, commands.cmd_aggregate)

    p = verbs.add_parser("track", help="mirror run folders into MLflow for browsing",
                         description="Mirror run folders into an MLflow experiment (one parent "
                                     "run per dataset, model and settings, one child per seed, "
                                     "keyed by the dataset's checksum and the settings' hash); "
                                     "MLFLOW_TRACKING_URI, default sqlite:///mlflow.db. "
                                     "Mirroring again replaces a run, never duplicates it.")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders to mirror")
    p.add_argument("--experiment", required=True,
                   help="MLflow experiment, one per paper artifact (e.g. table2)")
    p.add_argument("--settings", default="default",
                   help="settings label of the parent run (default: default)")
    p.add_argument("--record", type=Path, default=None,
                   help="also write the MLflow run ids as JSON to this file")
    _verb(p, commands.cmd_track)

    p = verbs.add_parser("provenance", help="record what made each generated table and figure",
                         description="Write provenance.json: for each artifact its checksum, "
                                     "the git commit, config hash, data checksums, seeds and "
                                     "MLflow run ids behind it.")
    p.add_argument("--out", type=Path, required=True, help="provenance.json to write")
    p.add_argument("--artifact", dest="artifacts", type=Path, action="append", required=True,
                   help="a generated file (repeatable)")
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders behind them")
    p.add_argument("--records", type=Path, nargs="*", default=[],
                   help="`urbanmoe track --record` files holding the MLflow run ids")
    p.add_argument("--made-by", default=None, help="the notebook or command that drew them")
    _verb(p, commands.cmd_provenance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``urbanmoe`` console script.

    Bad input (``InputError`` and its kinds, or a path that does not exist) prints one line and
    returns 2. Anything else is a bug: one line saying so and where its traceback was written,
    and 1. ``-v`` lets every exception through with its traceback.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0), or an argument error already printed (2)
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    install_log_filter()  # log records are redacted (urbanmoe.redact), whoever logs them
    try:
        cfg = load_config(args.config, args.overrides)
        for flag in OUTPUT_FLAGS:
            if getattr(args, flag, None) is not None:
                check_writable(Path(str(getattr(args, flag)).replace("{seed}", "0")), f"--{flag}")
        check_paths(args, cfg)
        return int(args.func(args, cfg))
    except (InputError, FileNotFoundError, NotADirectoryError) as exc:
        if args.verbose:
            raise
        print(f"urbanmoe: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if args.verbose:
            raise
        where = _keep_traceback()
        print(f"urbanmoe: internal error (a bug, not your input): {type(exc).__name__}: "
              f"{_one_line(exc)}; traceback in {where} (or rerun with -v)", file=sys.stderr)
        return EXIT_BUG


def _values(args: argparse.Namespace, name: str) -> Iterator[Path]:
    """The paths an option holds: none, one, or a list; ``{seed}`` patterns once per seed;
    a ``--label`` as its raster."""
    value = getattr(args, name, None)
    for item in value if isinstance(value, list) else [] if value is None else [value]:
        if name == "labels":
            yield commands.label_spec(item)[1].path
        elif "{seed}" in str(item):
            yield from (Path(str(item).replace("{seed}", str(s))) for s in args.seed)
        else:
            yield Path(item)


def check_paths(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    """Refuse, before any work, an output that may not be written (``VerbPaths``): one that
    would replace what the project did not write, or is, contains or lies inside an input."""
    paths = PATHS[args.verb]
    reads = [p for name in (*paths.reads, "config") for p in _values(args, name)]
    searched = [p for name in paths.searched for p in _values(args, name)]
    for name, kind, suffixes in paths.writes:
        for path in _values(args, name):
            for target in (path.with_suffix(s) if s else path for s in suffixes):
                why = overlap(target, reads, searched=searched)
                if why is not None:
                    raise OutputError(f"--{name.replace('_', '-')} {target}: {why}")
                check_output(target, kind, kind in FOLDER_KINDS, f"--{name.replace('_', '-')}")
    containers = [(f"--{name}", p) for name in paths.containers for p in _values(args, name)]
    containers += [(f"{section}.{key}", Path(cfg[section][key])) for section, key in CACHES
                   if cfg[section].get(key)]
    for flag, path in containers:
        why = overlap(path, reads, searched=searched, container=True)
        if why is not None:
            raise OutputError(f"{flag} {path}: {why}")


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line, secrets masked and at most about 1000 characters
    (``redact.shown``); an OSError as 'path: reason'."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return shown(f"{exc.filename}: {exc.strerror.lower()}")
    return shown(str(exc)) or type(exc).__name__


def _keep_traceback() -> str:
    """Write the current exception's traceback, secrets masked, to a temporary file; its
    path."""
    fd, path = tempfile.mkstemp(prefix="urbanmoe-traceback-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write(redact(traceback.format_exc()))
    return path


if __name__ == "__main__":
    sys.exit(main())
