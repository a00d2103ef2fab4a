rule synth:
    output:
        directory(expand("{root}/{city}", root=DATA, city=config["synth"]["cities"])),
    log:
        "logs/synth.log",
    params:
        root=parent_folder,
        settings=config["synth"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "urbanmoe synth --out {params.root} --quiet > {log} 2>&1"


# ancient(): a dataset restored by `dvc pull` may be newer on disk than its pulled features;
# the features are keyed by the table's checksum, and a rerun synth still triggers this rule.
rule features:
    input:
        ancient(dataset_dir),
    output:
        directory("data/features/{dataset}"),
    log:
        "logs/features/{dataset}.log",
    params:
        settings=config["features"],
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    shell:
        "urbanmoe features --dataset {input} --out {output} --quiet > {log} 2>&1"


rule import_urbanclip:
    input:
        urbanclip_source,
    output:
        directory(f"{REAL}/{{city}}"),
    log:
        "logs/import/{city}.log",
    wildcard_constraints:
        city=URBANCLIP_NAMES,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "urbanmoe import-urbanclip --city-dir {input} --out {output} --city {wildcards.city}"
        " > {log} 2>&1"
