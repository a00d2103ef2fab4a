rule train:
    input:
        dataset=dataset_dir,
        features="data/features/{dataset}",
    output:
        directory("results/runs/{dataset}/{split}/{model}/seed{seed}"),
    log:
        "logs/train/{dataset}/{split}/{model}/seed{seed}.log",
    params:
        settings=training_settings,
    threads: WF["train_threads"]
    resources:
        **train_resources(),
    shell:
        "urbanmoe train --dataset {input.dataset} --seed {wildcards.seed} --out {output}"
        " --set model.name={wildcards.model} --set split.kind={wildcards.split}"
        " --set features.cache_dir={input.features}"
        " --set train.threads={threads} --quiet > {log} 2>&1"


rule aggregate:
    input:
        table2_runs,
    output:
        "results/summary.csv",
    log:
        "logs/aggregate.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "urbanmoe aggregate {input} --out {output} > {log} 2>&1"
