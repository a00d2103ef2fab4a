# MLflow mirrors the result files (which stay the truth): one experiment per paper item
# (table2, table3, table4, figure3, figures4_5; and spatial_context, transfer of `snakemake
# spatial`) mirrors its runs; mirroring again replaces runs, never duplicates them.
rule track:
    input:
        plan.experiment_runs,
    output:
        "results/mlflow/{experiment}.json",
    log:
        "logs/track/{experiment}.log",
    benchmark:
        "results/benchmarks/track/{experiment}.tsv",
    wildcard_constraints:
        experiment="|".join(plan.experiments + plan.spatial_experiments
                            + plan.hafusion_experiments),
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    shell:
        "urbanmoe track {input:q} --experiment {wildcards.experiment:q} --record {output:q}"
        " > {log:q} 2>&1"


rule provenance:
    input:
        artifacts=plan.paper_artifacts,
        runs=plan.table2_runs + plan.ablation_runs,
        records=expand("results/mlflow/{experiment}.json", experiment=plan.experiments),
    output:
        "paper_figures/provenance.json",
    log:
        "logs/paper/provenance.log",
    benchmark:
        "results/benchmarks/paper/provenance.tsv",
    params:
        artifacts=plan.artifact_flags,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "urbanmoe provenance --out {output:q} {params.artifacts:q} --runs {input.runs:q}"
        " --records {input.records:q} > {log:q} 2>&1"
