rule synth:
    output:
        directory(plan.synth_dirs),
    log:
        "logs/synth.log",
    benchmark:
        "results/benchmarks/synth.tsv",
    params:
        root=subpath(output[0], parent=True),
        settings=config["synth"],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "urbanmoe synth --out {params.root:q} --quiet > {log:q} 2>&1"


# ancient(): a dataset restored by `dvc pull` may be newer on disk than its pulled features;
# the features are keyed by the table's checksum, and a rerun synth still triggers this rule.
rule features:
    input:
        ancient(plan.dataset_dir),
    output:
        directory("data/features/{dataset}"),
    log:
        "logs/features/{dataset}.log",
    benchmark:
        "results/benchmarks/features/{dataset}.tsv",
    params:
        settings=config["features"],
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    shell:
        "urbanmoe features --dataset {input:q} --out {output:q} --quiet > {log:q} 2>&1"


rule import_urbanclip:
    input:
        plan.urbanclip_source,
    output:
        directory(plan.real_dir),
    log:
        "logs/import/{city}.log",
    benchmark:
        "results/benchmarks/import/{city}.tsv",
    wildcard_constraints:
        city=plan.urbanclip_names,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        gdp_fill=config["data"]["urbanclip_gdp_fill"],
    shell:
        "urbanmoe import-urbanclip --city-dir {input:q} --out {output:q}"
        " --city {wildcards.city:q} --gdp-fill {params.gdp_fill:q} > {log:q} 2>&1"


rule data_report:
    input:
        ancient(plan.dataset_dir),
    output:
        multiext("results/data_report/{dataset}", ".json", ".md"),
    log:
        "logs/data_report/{dataset}.log",
    benchmark:
        "results/benchmarks/data_report/{dataset}.tsv",
    params:
        stem=subpath(output[0], strip_suffix=".json"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "urbanmoe report --dataset {input:q} --out {params.stem:q} > {log:q} 2>&1"
