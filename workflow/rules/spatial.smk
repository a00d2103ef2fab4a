# Spatial context, not in the paper (docs/spatial.md): `snakemake --cores 2 spatial`.
# The comparison's runs come from `rule train` (collection "spatial"); transfer runs from here.
rule transfer:
    input:
        unpack(transfer_inputs),
    output:
        [
            directory(f"results/transfer/{{pair}}/{{variant}}/seed{seed}")
            for seed in SEEDS
        ],
    log:
        "logs/transfer/{pair}/{variant}.log",
    benchmark:
        "results/benchmarks/transfer/{pair}/{variant}.tsv",
    wildcard_constraints:
        pair="[^/]+_to_[^/]+",
    params:
        parts=transfer_parts,
        seeds=" ".join(str(s) for s in SEEDS),
        pattern=transfer_pattern,
        settings=training_settings,
    threads: WF["train_threads"]
    resources:
        **train_resources(),
    shell:
        "urbanmoe transfer --source {input.source:q} --target {input.target:q}"
        " {params.parts:q} --seed {params.seeds} --out {params.pattern:q}"
        " --variant {wildcards.variant:q} --set train.threads={threads} --quiet > {log:q} 2>&1"


rule spatial_report:
    input:
        runs=spatial_runs,
        transfer=transfer_runs,
    output:
        SPATIAL_ARTIFACTS,
        TRANSFER_ARTIFACTS,
    log:
        "logs/paper/spatial_report.log",
    benchmark:
        "results/benchmarks/paper/spatial_report.tsv",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "urbanmoe spatial-report --runs {input.runs:q} --transfer {input.transfer:q}"
        " --out paper_figures/spatial > {log:q} 2>&1"


rule spatial:
    input:
        SPATIAL_ARTIFACTS,
        TRANSFER_ARTIFACTS,
        expand("results/mlflow/{experiment}.json", experiment=SPATIAL_EXPERIMENTS),
