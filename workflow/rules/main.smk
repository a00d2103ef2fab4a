rule synth:
    output:
        directory(expand("{root}/{city}", root=DATA, city=config["synth"]["cities"])),
    log:
        "logs/synth.log",
    params:
        root=parent_folder,
    shell:
        "urbanmoe synth --out {params.root} --quiet > {log} 2>&1"


rule train:
    input:
        f"{DATA}/{{dataset}}",
    output:
        directory("results/runs/{dataset}/{model}/seed{seed}"),
    log:
        "logs/train/{dataset}/{model}/seed{seed}.log",
    threads: 2
    shell:
        "urbanmoe train --dataset {input} --seed {wildcards.seed} --out {output}"
        " --set model.name={wildcards.model} --quiet > {log} 2>&1"


rule aggregate:
    input:
        run_dirs,
    output:
        "results/summary.csv",
    log:
        "logs/aggregate.log",
    shell:
        "urbanmoe aggregate results/runs --out {output} > {log} 2>&1"
