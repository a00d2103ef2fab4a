# Spatial context, not in the paper (docs/spatial.md): `snakemake --cores 2 spatial`.
# The comparison's runs come from `rule train` (collection "spatial"); transfer runs from here,
# with the paper's UrbanMoE as the train rule's (model.location false).
rule transfer:
    input:
        unpack(plan.transfer_inputs),
    output:
        directory(plan.seed_folders("results/transfer/{pair}/{variant}")),
    log:
        "logs/transfer/{pair}/{variant}.log",
    benchmark:
        "results/benchmarks/transfer/{pair}/{variant}.tsv",
    wildcard_constraints:
        pair="[^/]+_to_[^/]+",
    params:
        parts=plan.transfer_parts,
        seeds=plan.seed_args,
        pattern=plan.transfer_pattern,
        settings=plan.training_settings,
    threads: config["workflow"]["train_threads"]
    resources:
        **plan.train_resources,
    shell:
        "urbanmoe transfer --source {input.source:q} --target {input.target:q}"
        " {params.parts:q} --seed {params.seeds} --out {params.pattern:q}"
        " --variant {wildcards.variant:q} --set model.location=false"
        " --set train.threads={threads} --quiet > {log:q} 2>&1"


rule spatial_report:
    input:
        runs=plan.spatial_runs,
        transfer=plan.transfer_runs,
    output:
        plan.spatial_artifacts,
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
        plan.spatial_artifacts,
        expand("results/mlflow/{experiment}.json", experiment=plan.spatial_experiments),
