#!/usr/bin/env python3
"""A fresh clone's data, one line per item: what a bare ``dvc pull`` cannot do there.

    python scripts/pull.py        (or: make pull)

- The data products of ``dvc.yaml`` (the synthetic benchmark, the features of each city) are
  restored from the DVC remote when a ``dvc.lock`` records them (``dvc pull dvc.yaml``). The
  repository commits none: ``snakemake`` rebuilds them, deterministically.
- The real cities, committed as ``dvc import-url`` stages (the UrbanCLIP toolkit's under
  ``data/raw/urbanclip/<City>/``, HAFusion's under ``data/raw/hafusion/data_<City>/``), are
  fetched from their repositories at the pinned commits with ``dvc update`` (which records
  their md5 in the ``.dvc`` files). A city whose files are present is left alone; where the
  upstream host cannot be reached, one line says so.

Exit status 0 unless something really failed: a ``dvc`` command failing while its source
answers (an upstream file gone, a remote without the locked products), or ``dvc`` missing. Only
the standard library is used; ``dvc`` is run from ``PATH``.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# one folder per city, holding its .dvc files, under each source's folder; the doc on a local copy
IMPORTS = {Path("data/raw/urbanclip"): "docs/urbanclip.md",
           Path("data/raw/hafusion"): "docs/hafusion.md"}
PROBE_TIMEOUT_S = 10.0
_URL = re.compile(r"\bhttps?://\S+")


def _dvc(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``dvc ARGS`` in the repository root, output captured."""
    return subprocess.run(["dvc", *args], cwd=ROOT, capture_output=True, text=True)


def _indented(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stdout + done.stderr).strip()
    return "\n".join(f"    {line}" for line in text.splitlines())


@functools.cache
def _answers(origin: str) -> bool:
    """Whether ``origin`` (scheme://host) gives any HTTP answer, through the usual proxies."""
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{origin}/", method="HEAD"),
                                    timeout=PROBE_TIMEOUT_S):
            return True
    except urllib.error.HTTPError:
        return True  # an error status is an answer: the host is reachable
    except (OSError, ValueError):
        return False  # refused, no route, name not resolved, timed out, proxy down


def products() -> tuple[str, bool]:
    """One line on the ``dvc.yaml`` products, and whether all went well."""
    label = "data products (dvc.yaml)"
    if not (ROOT / "dvc.lock").is_file():
        return f"{label}: no dvc.lock records them, nothing to pull; `snakemake` builds them", True
    done = _dvc("pull", "dvc.yaml")
    if done.returncode == 0:
        return f"{label}: restored from the DVC remote", True
    return f"{label}: FAILED to restore from the DVC remote\n{_indented(done)}", False


def city(folder: Path, doc: str) -> tuple[str, bool]:
    """One line on a real city (a folder of ``dvc import-url`` stages), and whether all went
    well: present, fetched, not fetched because its host is unreachable, or failed."""
    name = folder.name
    stages = sorted(folder.glob("*.dvc"))
    outs = [stage.with_suffix("") for stage in stages]
    files = ", ".join(out.name for out in outs)
    if all(out.exists() for out in outs):
        return f"{name}: present ({files})", True
    done = _dvc("update", *(str(stage.relative_to(ROOT)) for stage in stages))
    if done.returncode == 0:
        return f"{name}: fetched {files} (md5 recorded in its .dvc files)", True
    origins = set()
    for stage in stages:
        url = _URL.search(stage.read_text())
        if url:
            parts = urllib.parse.urlsplit(url.group(0))
            origins.add(f"{parts.scheme}://{parts.netloc}")
    unreachable = sorted(o for o in origins if not _answers(o))
    if unreachable:
        hosts = ", ".join(urllib.parse.urlsplit(o).netloc for o in unreachable)
        return (f"{name}: not fetched, {hosts} unreachable (offline?); rerun with network, "
                f"or see {doc} for a local copy"), True
    return f"{name}: FAILED to fetch {files}\n{_indented(done)}", False


def main() -> int:
    """Restore the products, fetch the cities; print one line each; 1 if anything failed."""
    if shutil.which("dvc") is None:
        print("dvc: not found on PATH (`make setup` installs it into .venv)")
        return 1
    cities = [functools.partial(city, folder, doc) for source, doc in IMPORTS.items()
              for folder in sorted((ROOT / source).glob("*"))
              if folder.is_dir() and any(folder.glob("*.dvc"))]
    ok = True
    for step in (products, *cities):
        line, step_ok = step()
        print(line, flush=True)
        ok = ok and step_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
