# HAFusion's published table (ICDE 2024) on its public cities (docs/hafusion.md):
# `snakemake --cores 2 hafusion`. The cities come from hafusion.source (make pull fetches them
# into data/raw/hafusion; a local copy serves too); every row runs over hafusion.seeds.
rule import_hafusion:
    input:
        ancient(plan.hafusion_source),
    output:
        directory("data/real/hafusion/{city}"),
    log:
        "logs/import/hafusion/{city}.log",
    benchmark:
        "results/benchmarks/import/hafusion/{city}.tsv",
    wildcard_constraints:
        city="NY|Chi|SF",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "urbanmoe import-hafusion --city-dir {input:q} --out {output:q} > {log:q} 2>&1"


rule train_hafusion:
    input:
        dataset="data/real/hafusion/{city}",
        shared=plan.hafusion_shared,
    output:
        directory(plan.hafusion_seed_folders),
    log:
        "logs/train/hafusion/{city}/{variant}.log",
    benchmark:
        "results/benchmarks/train/hafusion/{city}/{variant}.tsv",
    wildcard_constraints:
        city="NY|Chi|SF",
    params:
        seeds=plan.hafusion_seed_args,
        pattern=plan.hafusion_pattern,
        sets=plan.hafusion_sets,
    threads: config["workflow"]["train_threads"]
    priority: plan.hafusion_priority
    resources:
        **plan.train_resources,
    shell:
        "urbanmoe train --dataset {input.dataset:q} --seed {params.seeds}"
        " --out {params.pattern:q} --variant {wildcards.variant:q} {params.sets:q}"
        " --set train.threads={threads} --quiet > {log:q} 2>&1"


rule hafusion_table:
    input:
        notebook=plan.notebook("hafusion.ipynb"),
        published=plan.published("published_hafusion_icde24.csv"),
        runs=plan.hafusion_runs,
    output:
        reported("hafusion.ipynb"),
        notebook="results/notebooks/hafusion.ipynb",
    log:
        "logs/paper/hafusion.log",
    benchmark:
        "results/benchmarks/paper/hafusion.tsv",
    params:
        lists=plan.hafusion_yaml,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3"
        " -p runs_dir results/hafusion -p out_dir paper_figures/hafusion"
        " -p published {input.published:q} -y {params.lists:q} > {log:q} 2>&1"


rule hafusion_provenance:
    input:
        artifacts=plan.hafusion_artifacts,
        runs=plan.hafusion_runs,
        records="results/mlflow/hafusion.json",
    output:
        "paper_figures/hafusion/provenance.json",
    log:
        "logs/paper/hafusion_provenance.log",
    benchmark:
        "results/benchmarks/paper/hafusion_provenance.tsv",
    params:
        artifacts=plan.artifact_flags,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "urbanmoe provenance --out {output:q} {params.artifacts:q} --runs {input.runs:q}"
        " --records {input.records:q} > {log:q} 2>&1"


rule hafusion:
    input:
        plan.hafusion_artifacts,
        "results/mlflow/hafusion.json",
        "paper_figures/hafusion/provenance.json",
