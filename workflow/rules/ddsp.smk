# Differentiable-synth sound matching (paper 2): in-domain data per variant, estimators per strategy (P-loss,
# Synth, Real, Mixed; Conv2D baseline), evaluation in and out of domain, the Sec. IV benchmark, effect use, and
# the proxy-gradient study (a proxy for FX-Env, its gradients against the exact ones, estimators trained with
# either embedding loss).

if DDSP_VARIANTS:

    wildcard_constraints:
        variant="|".join(DDSP_VARIANTS),
        ddsp_model="|".join(sorted({m for v in DDSP_VARIANTS for m in ddsp_models(v)})),

    rule ddsp_data:
        output:
            "results/ddsp/data/{variant}.json",
        params:
            cfg=ddsp_config(),
            out=lambda w: f"results/ddsp/data/{w.variant}",
        log:
            "logs/ddsp/ddsp_data/{variant}.log",
        conda:
            "../../envs/matching.yaml"
        threads: 1
        resources:
            mem_mb=6000,
            runtime=planned_runtime("ddsp_data", 240),
        shell:
            "python -m synthproxy ddsp-data --config-json {params.cfg:q} --variant {wildcards.variant} "
            "--out-dir {params.out} --marker {output} --threads {threads} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule ddsp_train:
        input:
            unpack(lambda w: {"data": f"results/ddsp/data/{w.variant}.json"}
                   | ({"ood": "results/data/out_of_domain.json"} if ddsp_model_info(w.variant, w.ddsp_model)["ood"] else {})
                   | ({"proxy": "results/ddsp/proxy/summary.json"}
                      if ddsp_model_info(w.variant, w.ddsp_model)["embedding"] == "proxy" else {})),
        output:
            "results/ddsp/models/{variant}/{ddsp_model}/summary.json",
        params:
            cfg=ddsp_config(),
            data=lambda w: f"results/ddsp/data/{w.variant}",
            ood=lambda w, input: "--ood-store results/data/out_of_domain.zarr" if "ood" in input.keys() else "",
            proxy=lambda w, input: f"--proxy {input.proxy}" if "proxy" in input.keys() else "",
            out=lambda w, output: os.path.dirname(output[0]),
        log:
            "logs/ddsp/ddsp_train/{variant}_{ddsp_model}.log",
        conda:
            "../../envs/matching.yaml"
        threads: 2
        resources:
            mem_mb=6000,
            runtime=planned_runtime("ddsp_train", 720),
            gpu=gpu_request(),
        shell:
            "python -m synthproxy ddsp-train --config-json {params.cfg:q} --variant {wildcards.variant} "
            "--model {wildcards.ddsp_model} --data-dir {params.data} {params.ood} {params.proxy} --out-dir {params.out} "
            "--summary {output} --threads {threads} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule ddsp_evaluate:
        input:
            summary="results/ddsp/models/{variant}/{ddsp_model}/summary.json",
            ood="results/data/out_of_domain.json" if OOD else [],
        output:
            "results/eval/ddsp/{variant}/{ddsp_model}.json",
        params:
            cfg=ddsp_config(),
            data=lambda w: f"results/ddsp/data/{w.variant}",
            estimator=lambda w, input: os.path.join(os.path.dirname(input.summary), "best.pt"),
            ood="--ood-store results/data/out_of_domain.zarr" if OOD else "",
        log:
            "logs/ddsp/ddsp_evaluate/{variant}_{ddsp_model}.log",
        conda:
            "../../envs/matching.yaml"
        threads: 2
        resources:
            mem_mb=6000,
            runtime=planned_runtime("ddsp_evaluate", 120),
        shell:
            "python -m synthproxy ddsp-evaluate --config-json {params.cfg:q} --variant {wildcards.variant} "
            "--estimator {params.estimator} --data-dir {params.data} {params.ood} --out {output} "
            "--threads {threads} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule ddsp_benchmark:
        output:
            table="results/ddsp/benchmark.csv",
            summary=report(
                "results/analysis/ddsp_benchmark.csv", category="DDSP sound matching", caption="../report/ddsp.rst"
            ),
            summary_md="results/analysis/ddsp_benchmark.md",
            summary_tex="results/analysis/ddsp_benchmark.tex",
            figure=report(
                "results/analysis/ddsp_benchmark.png", category="DDSP sound matching", caption="../report/ddsp.rst"
            ),
        params:
            cfg=ddsp_config(),
            prefix=lambda w, output: output.summary.removesuffix(".csv"),
        log:
            "logs/ddsp/ddsp_benchmark.log",
        conda:
            "../../envs/matching.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=planned_runtime("ddsp_benchmark", 60),
        shell:
            "python -m synthproxy ddsp-benchmark --config-json {params.cfg:q} --out-csv {output.table} "
            "--summary-prefix {params.prefix} --figure {output.figure} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    if DDSP.get("proxy") and "fx_env" in DDSP_VARIANTS and TRAINING:

        rule ddsp_proxy:
            input:
                summaries=expand("results/models/{synth}/{arch}/summary.json", synth=TRAIN_SYNTHS, arch=ARCHS),
                data="results/ddsp/data/fx_env.json",
            output:
                "results/ddsp/proxy/summary.json",
            params:
                cfg=ddsp_proxy_config(),
                out=lambda w, output: os.path.dirname(output[0]),
            log:
                "logs/ddsp/ddsp_proxy.log",
            conda:
                "../../envs/matching.yaml"
            threads: 2
            resources:
                mem_mb=6000,
                runtime=planned_runtime("ddsp_proxy", 720),
                gpu=gpu_request(),
            shell:
                "python -m synthproxy ddsp-proxy --config-json {params.cfg:q} --summaries {input.summaries} "
                "--data-dir results/ddsp/data/fx_env --out-dir {params.out} --summary {output} "
                "--threads {threads} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

        rule proxy_gradients:
            input:
                proxy="results/ddsp/proxy/summary.json",
                data="results/ddsp/data/fx_env.json",
            output:
                "results/ddsp/proxy_gradients.csv",
            params:
                cfg=ddsp_config(),
            log:
                "logs/ddsp/proxy_gradients.log",
            conda:
                "../../envs/matching.yaml"
            threads: 1
            resources:
                mem_mb=4000,
                runtime=planned_runtime("proxy_gradients", 60),
            shell:
                "python -m synthproxy proxy-gradients --config-json {params.cfg:q} --proxy {input.proxy} "
                "--data-dir results/ddsp/data/fx_env --out-csv {output} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

        rule proxy_gradients_table:
            input:
                gradients="results/ddsp/proxy_gradients.csv",
                scores=["results/eval/ddsp/fx_env/proxy_emb.json", "results/eval/ddsp/fx_env/exact_emb.json"],
            output:
                table=report(
                    "results/analysis/proxy_gradients.csv",
                    category="DDSP sound matching",
                    caption="../report/ddsp.rst",
                ),
                md="results/analysis/proxy_gradients.md",
                tex="results/analysis/proxy_gradients.tex",
                matching=report(
                    "results/analysis/proxy_gradients_matching.csv",
                    category="DDSP sound matching",
                    caption="../report/ddsp.rst",
                ),
                matching_md="results/analysis/proxy_gradients_matching.md",
                matching_tex="results/analysis/proxy_gradients_matching.tex",
                figure=report(
                    "results/analysis/proxy_gradients.png",
                    category="DDSP sound matching",
                    caption="../report/ddsp.rst",
                ),
            params:
                prefix=lambda w, output: output.table.removesuffix(".csv"),
            log:
                "logs/ddsp/proxy_gradients_table.log",
            conda:
                "../../envs/analysis.yaml"
            threads: 1
            resources:
                mem_mb=2000,
                runtime=planned_runtime("proxy_gradients_table", 10),
            shell:
                "python -m synthproxy proxy-gradients-table --gradients {input.gradients} --scores {input.scores} "
                "--out-prefix {params.prefix} --figure {output.figure} > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"

    rule ddsp_tables:
        input:
            scores=[f"results/eval/ddsp/{v}/{m}.json" for v in DDSP_VARIANTS for m in ddsp_models(v)],
        output:
            in_domain=report(
                "results/analysis/ddsp_in_domain.csv", category="DDSP sound matching", caption="../report/ddsp.rst"
            ),
            in_md="results/analysis/ddsp_in_domain.md",
            in_tex="results/analysis/ddsp_in_domain.tex",
            out_domain=report(
                "results/analysis/ddsp_out_of_domain.csv",
                category="DDSP sound matching",
                caption="../report/ddsp.rst",
            ),
            out_md="results/analysis/ddsp_out_of_domain.md",
            out_tex="results/analysis/ddsp_out_of_domain.tex",
            effects="results/analysis/ddsp_effects.csv",
            effects_md="results/analysis/ddsp_effects.md",
            effects_tex="results/analysis/ddsp_effects.tex",
            effects_png=report(
                "results/analysis/ddsp_effects.png", category="DDSP sound matching", caption="../report/ddsp.rst"
            ),
        log:
            "logs/ddsp/ddsp_tables.log",
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=planned_runtime("ddsp_tables", 10),
        shell:
            "python -m synthproxy ddsp-tables --scores {input.scores} --out-dir results/analysis > {log} 2>&1 || (tail -n 25 {log} >&2; exit 1)"
