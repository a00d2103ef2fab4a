# The notebooks take names and notes from config as raw strings (papermill -r: a dataset
# named 2024 stays a string) and lists as YAML with quoted strings (-y, urbanmoe.workflow.yaml_list).
rule table2:
    input:
        notebook=os.path.join(NOTEBOOKS, "table2.ipynb"),
        published=os.path.join(PUBLISHED, "published_table2.csv"),
        runs=table2_runs,
    output:
        reported("table2.ipynb"),
        notebook="results/notebooks/table2.ipynb",
    log:
        "logs/paper/table2.log",
    benchmark:
        "results/benchmarks/paper/table2.tsv",
    params:
        datasets=f"datasets: {wf.yaml_list(DATASETS)}",
        note=data_note,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3 -p runs_dir results/runs"
        " -p out_dir paper_figures -p published {input.published:q}"
        " -y {params.datasets:q} -r data_note {params.note:q} > {log:q} 2>&1"


rule ablations:
    input:
        notebook=os.path.join(NOTEBOOKS, "ablations.ipynb"),
        published=expand(
            os.path.join(PUBLISHED, "published_table{n}.csv"), n=[3, 4]
        ),
        runs=ablation_runs,
        baselines=table4_baseline_runs,
    output:
        reported("ablations.ipynb"),
        notebook="results/notebooks/ablations.ipynb",
    log:
        "logs/paper/ablations.log",
    benchmark:
        "results/benchmarks/paper/ablations.tsv",
    params:
        dataset=EXP["dataset"],
        split=EXP["split"],
        published=published_folder,
        grids=wf.ablation_grids(config),
        note=data_note,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3"
        " -p ablations_dir results/ablations -p runs_dir results/runs"
        " -r dataset {params.dataset:q} -r split {params.split:q} -p out_dir paper_figures"
        " -p published_dir {params.published:q} -y {params.grids:q}"
        " -r data_note {params.note:q} > {log:q} 2>&1"


rule experts:
    input:
        notebook=os.path.join(NOTEBOOKS, "experts.ipynb"),
        run=wf.figure_run(config),
    output:
        reported("experts.ipynb"),
        notebook="results/notebooks/experts.ipynb",
    log:
        "logs/paper/experts.log",
    benchmark:
        "results/benchmarks/paper/experts.tsv",
    params:
        tsne_seed=EXP["tsne_seed"],
        points=EXP["tsne_points"],
        tsne_iter=EXP["tsne_iter"],
        note=data_note,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3 -p run_dir {input.run:q}"
        " -p out_dir paper_figures -p tsne_seed {params.tsne_seed}"
        " -p n_points {params.points} -p tsne_iter {params.tsne_iter}"
        " -r dataset_note {params.note:q} > {log:q} 2>&1"


rule dataset_stats:
    input:
        notebook=os.path.join(NOTEBOOKS, "dataset.ipynb"),
        published=os.path.join(PUBLISHED, "published_table1.csv"),
        datasets=all_dataset_dirs(),
    output:
        reported("dataset.ipynb"),
        notebook="results/notebooks/dataset.ipynb",
    log:
        "logs/paper/dataset.log",
    benchmark:
        "results/benchmarks/paper/dataset.tsv",
    params:
        roots=f"dataset_dirs: {wf.yaml_list(all_dataset_dirs())}",
        sample=EXP["dataset"],
        seed=EXP["sample_seed"],
        note=data_note,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "papermill {input.notebook:q} {output.notebook:q} -k python3"
        " -y {params.roots:q} -p out_dir paper_figures"
        " -p published {input.published:q} -r sample_dataset {params.sample:q}"
        " -p sample_seed {params.seed} -r data_note {params.note:q} > {log:q} 2>&1"


rule claims:
    input:
        "paper_figures/table2.csv",
        "paper_figures/ablations_summary.csv",
        "paper_figures/figure5_weights.csv",
        "paper_figures/sparsity.csv",
    output:
        report("paper_figures/claims.md", caption="../report/claims.rst", category="Claims"),
    log:
        "logs/paper/claims.log",
    benchmark:
        "results/benchmarks/paper/claims.tsv",
    params:
        folder=parent_folder_of_input,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "urbanmoe claims --figures {params.folder:q} --out {output:q} > {log:q} 2>&1"
