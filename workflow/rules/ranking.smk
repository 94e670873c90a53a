# Sound-attribute ranking evaluation of audio representations (paper Sec. 5.1, Fig. 2).


rule ranking_group:
    input:
        spec=lambda w: CFG["synths"][w.synth]["spec"],
        groups=lambda w: CFG["ranking"]["synths"][w.synth],
    output:
        scores="results/ranking/{synth}/{group}.csv",
        side="results/ranking/{synth}/{group}.json",
    params:
        cfg=lambda w: ranking_config(w.synth),
    log:
        "logs/ranking/ranking_group/{synth}_{group}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=planned_runtime("ranking_group", 120),
    shell:
        "python -m synthproxy ranking-group --config-json {params.cfg:q} --synth {wildcards.synth} "
        "--group {wildcards.group} --out-csv {output.scores} --out-json {output.side} --threads {threads} "
        "> {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"


rule ranking_summary:
    input:
        scores=lambda w: expand("results/ranking/{{synth}}/{group}.csv", group=ranking_groups(w.synth)),
        side=lambda w: expand("results/ranking/{{synth}}/{group}.json", group=ranking_groups(w.synth)),
    output:
        table=report(
            "results/analysis/ranking_{synth}.csv",
            category="Audio model ranking",
            caption="../report/ranking.rst",
        ),
        md="results/analysis/ranking_{synth}.md",
        tex="results/analysis/ranking_{synth}.tex",
        figure=report(
            "results/analysis/ranking_{synth}.png",
            category="Audio model ranking",
            caption="../report/ranking.rst",
        ),
    params:
        prefix=lambda w, output: output.table.removesuffix(".csv"),
    log:
        "logs/ranking/ranking_summary/{synth}.log",
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=planned_runtime("ranking_summary", 10),
    shell:
        "python -m synthproxy ranking-summary --scores {input.scores} --side {input.side} "
        "--out-prefix {params.prefix} --figure {output.figure} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"
