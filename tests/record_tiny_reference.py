"""Record the tiny workflow's paper numbers (Table 2, the ablation rows) as the reference the
tests hold later runs to: `python tests/record_tiny_reference.py RUN_FOLDER`, where RUN_FOLDER
ran `snakemake -s Snakefile -d RUN_FOLDER --cores 2` on a copy of .test/config. Do it only for
a change meant to move the numbers, and say why in its commit."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import RECORDED, paper_numbers

if __name__ == "__main__":
    RECORDED.mkdir(parents=True, exist_ok=True)
    for name, df in paper_numbers(Path(sys.argv[1])).items():
        df.to_csv(RECORDED / name, index=False, float_format="%.17g")
        print(f"{RECORDED / name}: {len(df)} rows, {df.shape[1]} columns")
