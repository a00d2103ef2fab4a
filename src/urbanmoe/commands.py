"""The verbs of the ``urbanmoe`` command (``cli.py`` parses the arguments and calls them).

Each ``cmd_<verb>(args, cfg)`` is a thin call of the library with the parsed arguments and the
validated configuration; it returns the exit status. Heavy imports stay inside the verbs, so
``urbanmoe --help`` is quick.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from urbanmoe.config import load_config
from urbanmoe.errors import InputError


def cmd_synth(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.data.synthetic import SynthSettings, generate_benchmark

    s = cfg["synth"]
    seed = s["seed"] if args.seed is None else args.seed
    settings = SynthSettings(seed=seed, tile_size=s["tile_size"], cities=tuple(s["cities"]),
                             length_scale=s["length_scale"])
    for path in generate_benchmark(args.out, settings, progress=not args.quiet):
        print(path)
    return 0


def cmd_features(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.data.table import load_dataset
    from urbanmoe.features.base import extract_all
    from urbanmoe.io import atomic_path

    ds = load_dataset(args.dataset)
    with atomic_path(args.out, "features") as tmp:
        files = extract_all(ds, cfg["features"], tmp, progress=not args.quiet)
    for modality, name in files.items():
        print(f"{modality}: {args.out / name}")
    return 0


def cmd_import_hafusion(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.data.sources.hafusion import import_hafusion_city

    out = import_hafusion_city(args.city_dir, args.out, name=args.name)
    print(out)
    print(f"data report: {out / 'report.md'}")
    return 0


def cmd_import_urbanclip(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.data.sources.urbanclip import import_urbanclip_city

    policy = args.gdp_fill or cfg["data"]["urbanclip_gdp_fill"]
    out = import_urbanclip_city(args.city_dir, args.out, city=args.city,
                                require_images=args.require_images, gdp_fill=policy)
    print(out)
    print(f"data report: {out / 'report.md'}")
    return 0


def cmd_claims(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.report.claims import write_claims

    if not args.figures.is_dir():
        raise InputError(f"--figures {args.figures}: no such folder (the generated tables)")
    from urbanmoe.report.claims import summary_line
    from urbanmoe.report.evidence import Rule

    v = cfg["verdicts"]
    verdicts = write_claims(args.figures, args.out,
                            rule=Rule(float(v["confidence"]), int(v["min_pairs"])))
    print(f"{summary_line(verdicts)} -> {args.out}")
    return 0


def cmd_report(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.data.report import report_markdown, write_report
    from urbanmoe.data.table import load_dataset

    report = write_report(load_dataset(args.dataset), args.out)
    print(report_markdown(report), end="")
    return 0


def label_spec(text: str) -> tuple[str, Any]:
    """NAME=PATH:AGG:UNIT (AGG sum or mean) -> (name, LabelSpec)."""
    from urbanmoe.data.build import LabelSpec

    try:
        name, rest = text.split("=", 1)
        path, agg, unit = rest.rsplit(":", 2)
    except ValueError:
        raise InputError(f"--label {text!r}: expected NAME=PATH:AGG:UNIT") from None
    if agg not in ("sum", "mean"):
        raise InputError(f"--label {text!r}: AGG {agg!r} is not sum or mean")
    return name, LabelSpec(Path(path), agg, unit)  # type: ignore[arg-type]


def cmd_build(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.data.build import BuildSettings, build_benchmark
    from urbanmoe.data.synthetic import CITIES

    if (args.city is None) == (args.bbox is None):
        raise InputError("build: give exactly one of --city (a Table 1 city) and --bbox")
    bbox = tuple(args.bbox) if args.bbox else CITIES[args.city].bbox
    settings = BuildSettings(bbox=bbox, patch_px=args.patch_px, resolution_m=args.resolution_m,
                             poi_mapping=args.poi_mapping)
    labels = dict(label_spec(item) for item in args.labels)
    print(build_benchmark(args.name or args.city, args.imagery, args.pois, labels, args.out,
                          settings))
    return 0


def cmd_describe(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.features.llm import make_backend, write_described

    print(write_described(args.dataset, args.out, make_backend(args.backend), args.cache,
                          progress=not args.quiet))
    return 0


def _each_seed(args: argparse.Namespace, run: Any) -> int:
    """``run(seed, run_dir)`` for every ``--seed``, ``--out`` holding ``{seed}`` when several."""
    out = str(args.out)
    if len(args.seed) > 1 and "{seed}" not in out:
        raise InputError(f"--out {out}: with several seeds it must contain {{seed}}")
    for seed in args.seed:
        run_dir = Path(out.replace("{seed}", str(seed)))
        _print_run(run(seed, run_dir), run_dir)
    return 0


def _variant_config(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with ``--variant MODEL@key=value...`` applied (unchanged without one)."""
    from urbanmoe.evaluation.experiments import parse_variant

    if not args.variant:
        return cfg
    model, items = parse_variant(args.variant)
    return load_config(args.config, [*args.overrides, f"model.name={model}", *items])


def cmd_train(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.evaluation.run import train_run

    cfg = _variant_config(args, cfg)
    return _each_seed(args, lambda seed, run_dir: train_run(
        args.dataset, seed, run_dir, cfg, progress=not args.quiet, variant=args.variant))


def cmd_transfer(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.evaluation.transfer import transfer_run

    cfg = _variant_config(args, cfg)
    return _each_seed(args, lambda seed, run_dir: transfer_run(
        args.source, args.target, seed, run_dir, cfg, source_part=args.source_part,
        target_part=args.target_part, progress=not args.quiet, variant=args.variant))


def _print_run(metrics: dict[str, Any], run_dir: Path) -> None:
    head = f"{metrics['dataset']} {metrics['model']} seed {metrics['seed']}"
    if "skipped" in metrics:
        print(f"{head} skipped: {metrics['skipped']} (recorded in {run_dir})")
        return
    theirs = (metrics.get("protocol") or {}).get("name", "project") != "project"
    scores = metrics["original_scale" if theirs else "log_scale"]  # the protocol's own scale
    ceiling = metrics.get("noise_ceiling") or {}
    scale = f"protocol {metrics['protocol']['name']}, raw scale" if theirs else "log1p scale"
    print(f"{head} -> {run_dir} ({scale})")
    for task in [*metrics["tasks"], "avg"]:
        m = scores[task]
        extra = f"  (noise ceiling R2 {ceiling[task]:.4f})" if task in ceiling else ""
        print(f"  {task:<12} R2 {m['r2']:.4f}  RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}{extra}")
    eff = metrics["efficiency"]
    print(f"  params {eff['params']:,}  peak memory {eff['peak_memory_mb']:.0f} MB  "
          f"train {eff['train_seconds']:.1f} s")
    for note in metrics.get("notes") or []:
        print(f"  note: {note}")


def cmd_predict(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.report.maps import write_predictions

    summary = write_predictions(args.runs, args.dataset, args.out, args.maps,
                                Path(cfg["features"]["cache_dir"]), progress=not args.quiet)
    print(f"{summary['model']} on {summary['dataset']}: {summary['n_regions']} regions "
          f"({summary['n_unlabelled']} unlabelled), seeds {summary['seeds']} -> {args.out}")
    for path in summary.get("maps", []):
        print(path)
    if "maps" not in summary:
        print(f"no map: {summary['shapes']}")
    return 0


def cmd_spatial_report(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.report.spatial import write_spatial_report

    for path in write_spatial_report(args.runs, args.transfer, args.out):
        print(path)
    return 0


def cmd_aggregate(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.evaluation.aggregate import write_summary

    print(write_summary(args.runs, args.out))
    return 0


def cmd_track(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.tracking import mirror_run
    from urbanmoe.tracking.mlflow_mirror import shown_uri

    records = []
    for run_dir in args.runs:
        run_id = mirror_run(run_dir, args.experiment, args.settings)
        print(f"{run_dir} -> {shown_uri()} experiment {args.experiment} run {run_id}")
        records.append({"run_dir": str(run_dir), "experiment": args.experiment,
                        "settings": args.settings, "run_id": run_id,
                        "tracking_uri": shown_uri()})  # credentials masked
    if args.record is not None:
        from urbanmoe.io import write_json

        write_json(args.record, records, "record")
    return 0


def cmd_provenance(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from urbanmoe.io import write_json
    from urbanmoe.tracking.provenance import provenance

    write_json(args.out, provenance(args.artifacts, args.runs, args.records, cfg,
                                    made_by=args.made_by), "provenance")
    print(args.out)
    return 0
