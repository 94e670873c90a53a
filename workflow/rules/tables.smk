# Tables and figures: every stage adds its outputs to TABLE_FILES; `results/tables` collects them.

TABLE_FILES = expand("results/analysis/dataset_summary.{ext}", ext=["csv", "md", "tex"])


rule dataset_summary:
    input:
        expand("results/data/{synth}/{split}.stats.json", synth=SYNTHS, split=SPLITS),
    output:
        report(
            "results/analysis/dataset_summary.csv",
            category="Datasets",
            caption="../report/dataset_summary.rst",
        ),
        "results/analysis/dataset_summary.md",
        "results/analysis/dataset_summary.tex",
    params:
        prefix=lambda w, output: output[0].removesuffix(".csv"),
    log:
        "logs/tables/dataset_summary.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m synthproxy dataset-summary --stats {input} --out-prefix {params.prefix} > {log} 2>&1"
