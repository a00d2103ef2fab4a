# One rule for every run: Table 2's (collection "runs", variant = a model name), the
# ablations' (collection "ablations", variant = urbanmoe@key=value...: the paper items' rows)
# and the spatial-context comparison's (collection "spatial", `snakemake spatial`).
# One job trains all seeds of a variant (one process: the imports are paid once); the longest
# start first, and a run that reuses another's learned representation waits for it.
# Every run is the paper's configuration: no location branch (model.location false), except
# the row that is that branch (urbanmoe_location sets it on).
rule train:
    input:
        dataset=plan.dataset_dir,
        features="data/features/{dataset}",
        shared=plan.shared_representation_runs,
    output:
        directory(plan.seed_folders("results/{collection}/{dataset}/{split}/{variant}")),
    log:
        "logs/train/{collection}/{dataset}/{split}/{variant}.log",
    benchmark:
        "results/benchmarks/train/{collection}/{dataset}/{split}/{variant}.tsv",
    wildcard_constraints:
        collection="runs|ablations|spatial",
    params:
        settings=plan.training_settings,
        seeds=plan.seed_args,
        pattern=plan.seed_pattern,
        features=plan.features_override,
    threads: config["workflow"]["train_threads"]
    priority: plan.train_priority
    resources:
        **plan.train_resources,
    shell:
        "urbanmoe train --dataset {input.dataset:q} --seed {params.seeds}"
        " --out {params.pattern:q} --variant {wildcards.variant:q}"
        " --set split.kind={wildcards.split:q} --set {params.features:q}"
        " --set model.location=false --set train.threads={threads} --quiet > {log:q} 2>&1"


# Every region of a dataset, unlabelled ones too, predicted by the default model's runs
# (model.name, all seeds): the table and GeoJSON, and the maps.
rule predict:
    input:
        dataset=plan.dataset_dir,
        features="data/features/{dataset}",
        runs=plan.default_model_runs,
    output:
        table=directory("results/predictions/{dataset}/{split}"),
        maps=directory("paper_figures/maps/{dataset}/{split}"),
    log:
        "logs/predict/{dataset}/{split}.log",
    benchmark:
        "results/benchmarks/predict/{dataset}/{split}.tsv",
    params:
        features=plan.features_override,
    threads: 1
    resources:
        mem_mb=config["workflow"]["train_mem_mb"],
        runtime=config["workflow"]["train_runtime_min"],
    shell:
        "urbanmoe predict --runs {input.runs:q} --dataset {input.dataset:q}"
        " --out {output.table:q} --maps {output.maps:q} --set {params.features:q}"
        " --quiet > {log:q} 2>&1"


rule aggregate:
    input:
        plan.table2_runs,
    output:
        "results/summary.csv",
    log:
        "logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "urbanmoe aggregate {input:q} --out {output:q} > {log:q} 2>&1"
