# `results/tables`: every table and figure of the configured stages (table_files()), collected with an index.


rule collect_tables:
    input:
        table_files(),
    output:
        directory("results/tables"),
    log:
        "logs/tables/collect_tables.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=planned_runtime("collect_tables", 5),
    shell:
        "python -m synthproxy collect-tables --inputs {input} --out {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"
