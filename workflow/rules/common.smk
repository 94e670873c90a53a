# Shared helpers: config validation at start, per-stage config slices, the python that runs the steps.
import functools
import glob
import json
import math
import os
import sys

from snakemake.exceptions import WorkflowError

from synthproxy.config import check_synths, check_workflow, embedding_key, validate_config
from synthproxy.errors import SynthProxyError

# Rules run `python -m synthproxy ...`: make `python` the interpreter running Snakemake (the project's
# .venv) even when the venv is not activated; with --use-conda the rule's env comes first on PATH.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

try:
    CFG = validate_config(config)
    check_workflow(CFG)
    SPECS = check_synths(CFG)
except SynthProxyError as exc:
    raise WorkflowError(f"synthproxy: {exc}") from None

SYNTHS = list(CFG["synths"])
SPLITS = list(CFG.get("dataset", {}).get("splits", {}))


wildcard_constraints:
    synth="|".join(SYNTHS),
    split="|".join(SPLITS) or "(?!)",
    shard=r"\d+",


def n_shards(split):
    s = CFG["dataset"]["splits"][split]
    return -(-s["size"] // s["shard_size"])


def stage_config(synth, *keys):
    """The config slice a step depends on (passed inline, so Snakemake reruns it exactly when it changes)."""
    keys = ("seed", "render", *keys)
    return json.dumps({**{k: CFG[k] for k in keys}, "synths": {synth: CFG["synths"][synth]}}, sort_keys=True)


def dataset_config(synth, split):
    """The dataset stage's slice for one split: resizing one split does not rerun the others."""
    cfg = json.loads(stage_config(synth, "representations", "dataset"))
    cfg["dataset"]["splits"] = {split: cfg["dataset"]["splits"][split]}
    return json.dumps(cfg, sort_keys=True)


def ranking_config(synth):
    rk = dict(CFG["ranking"], synths={synth: CFG["ranking"]["synths"][synth]})
    return json.dumps({**json.loads(stage_config(synth)), "ranking": rk}, sort_keys=True)


def ranking_groups(synth):
    from synthproxy.pipeline.ranking import load_groups, slug

    slugs = [slug(g.name) for g in load_groups(CFG["ranking"]["synths"][synth], SPECS[synth])]
    chosen = CFG["ranking"]["groups"]
    return slugs if chosen is None else [s for s in slugs if s in {slug(c) for c in chosen}]


RANKING_SYNTHS = list(CFG.get("ranking", {}).get("synths", {}))


def store(synth, split):
    return f"results/data/{synth}/{split}.zarr"


HANDCRAFTED_SYNTHS = list(CFG.get("handcrafted", {}).get("synths", {}))


def handcrafted_config(synth):
    hc = dict(CFG["handcrafted"], synths={synth: CFG["handcrafted"]["synths"][synth]})
    return json.dumps(
        {**json.loads(stage_config(synth, "representations")), "handcrafted": hc}, sort_keys=True
    )


def handcrafted_inputs(wildcards):
    """The spec, plus the fetched DX7 compilation when the configured folder is absent and fetching is on."""
    src = CFG["handcrafted"]["synths"][wildcards.synth]
    inputs = {"spec": CFG["synths"][wildcards.synth]["spec"]}
    if src["format"] == "dx7_sysex" and not os.path.isdir(src["path"]) and src.get("fetch"):
        inputs["fetched"] = "results/external/dx7_cartridges"
    return inputs


def preset_folder_manifest(synth):
    """Digest of the configured hand-crafted preset folder (a fetched folder, being an output, is tracked already)."""
    from synthproxy.presets.formats import get_format

    src = CFG["handcrafted"]["synths"][synth]
    return get_format(src["format"]).manifest(src["path"])


DIST = dict(CFG.get("distribution", {}))
if DIST and not DIST.get("representation"):
    DIST["representation"] = embedding_key(CFG["representations"][0])


TRAINING = CFG.get("training", {})
ARCHS = list(TRAINING.get("archs", {}))
TRAIN_SYNTHS = SYNTHS if TRAINING else []
HANDCRAFTED_TRAINED = [s for s in HANDCRAFTED_SYNTHS if s in TRAIN_SYNTHS]


def gpu_request():
    """GPUs a training job asks SLURM for (the plugin's `gpu` resource, sbatch --gpus): 1 when training.device
    is CUDA ("cuda", "cuda:1"), else 0 ("auto" requests none: set "cuda" to get a GPU node). Local runs ignore it."""
    return 1 if str(TRAINING.get("device", "")).lower().startswith("cuda") else 0


@functools.cache
def _planned_minutes():
    """Minutes of each rule's longest job as `python -m synthproxy plan` estimates them for this config (measured
    per-item costs, benchmarks/costs.yaml); {} if the cost table lacks an entry the config needs."""
    from synthproxy.cli.plan import encoder_sizer
    from synthproxy.plan import Cluster, estimate_plan, load_cost_table

    try:
        plan = estimate_plan(CFG, load_cost_table(), Cluster(gpus_per_node=gpu_request()),
                             encoder_sizer=encoder_sizer(CFG))
    except SynthProxyError:
        return {}
    out = {}
    for stage in plan.stages:
        for g in stage.groups:
            out[g.rule] = max(out.get(g.rule, 0.0), g.wall / 60)
    return out


MAX_RUNTIME = 7 * 24 * 60  # minutes: a common partition limit; a job planned longer should be split or use a GPU


def planned_runtime(rule, floor):
    """The `runtime` resource (minutes; SLURM's time limit) of a rule's jobs: three times the planned longest
    job, at least `floor`, doubled on each retry, at most MAX_RUNTIME."""

    def runtime(wildcards, attempt):
        est = _planned_minutes().get(rule, 0.0)
        return min(MAX_RUNTIME, max(floor, math.ceil(3 * est)) * attempt)

    return runtime


def _arch_train_settings(arch):
    a = TRAINING["archs"][arch]
    out = dict(TRAINING.get("settings", {}))
    out.update(epochs=TRAINING["epochs"], seed=TRAINING["seed"], val_k=TRAINING["val_k"], device=TRAINING["device"])
    if a.get("encoder"):
        out["encoder"] = a["encoder"]
    if a.get("batch_size"):
        out["batch_size"] = a["batch_size"]
    return out


def train_settings(synth, arch, input):
    out = _arch_train_settings(arch)
    # Snakemake reruns a training when its settings change: the old run's checkpoints are archived, not resumed
    out.setdefault("on_stale_checkpoint", "archive")
    if not TRAINING["optimizer_from_hpo"] and "lr" in TRAINING["archs"][arch]:
        out["lr"] = TRAINING["archs"][arch]["lr"]
    return json.dumps(out, sort_keys=True)


def train_inputs(wildcards):
    inputs = {
        "train": f"results/data/{wildcards.synth}/{TRAINING['train_split']}.stats.json",
        "val": f"results/data/{wildcards.synth}/{TRAINING['val_split']}.stats.json",
    }
    if TRAINING["optimizer_from_hpo"]:
        inputs["hpo"] = f"results/hpo/{wildcards.synth}/{wildcards.arch}/best_params.json"
    return inputs


def hpo_settings(synth, arch):
    h = TRAINING["hpo"]
    train = _arch_train_settings(arch)
    # trials train one epoch with the HPO schedule of hpo_spaces.yaml, validated once at the end
    for key in ("epochs", "seed", "constant_steps", "constant_fraction", "restart_fraction",
                "validations_per_epoch"):
        train.pop(key, None)
    out = dict(h.get("settings", {}))
    out.update(synth=synth, space=h["space"], seed=TRAINING["seed"], train=train,
               prune_train_loss=h["prune_train_loss"])
    for key in ("n_trials", "n_startup_trials"):
        if h[key] is not None:
            out[key] = h[key]
    if h.get("storage"):
        out["storage"] = h["storage"]
    return json.dumps(out, sort_keys=True)


OOD = dict(CFG.get("out_of_domain", {}))
MATCHING = dict(CFG.get("matching", {}))
MATCH_SYNTHS = list(MATCHING.get("synths", {})) if TRAINING else []


def match_models():
    """Estimator names of the matching stage (ploss, mix_hard, ...): strategies x relaxations."""
    from synthproxy.matching.datasets import matching_models

    return list(matching_models(CFG["matching"])) if MATCHING else []


def model_uses_proxy(model):
    from synthproxy.matching.datasets import matching_models

    return matching_models(CFG["matching"])[model][1] is not None


def matching_config(synth):
    """The config slice of one synth's sound matching (proxy data and training included: they feed it)."""
    keys = ("representations", "dataset", "training", "out_of_domain")
    cfg = json.loads(stage_config(synth, *[k for k in keys if k in CFG]))
    cfg["matching"] = dict(CFG["matching"], synths={synth: CFG["matching"]["synths"][synth]})
    return json.dumps(cfg, sort_keys=True)


DDSP = dict(CFG.get("ddsp", {}))
DDSP_VARIANTS = list(DDSP.get("variants", []))


def ddsp_models(variant):
    """Estimators of a DDSP variant: strategies, the Conv2D baseline, the proxy study's two (FX-Env)."""
    from synthproxy.matching.ddsp_data import ddsp_models as models

    return list(models(DDSP, variant))


def ddsp_model_info(variant, model):
    from synthproxy.matching.ddsp_data import ddsp_models as models
    from synthproxy.matching.ddsp_data import ddsp_strategies

    m = models(DDSP, variant)[model]
    return m | {"ood": ddsp_strategies(DDSP)[m["strategy"]].needs_out_of_domain}


def ddsp_config():
    """The config slice of the DDSP stage."""
    keys = ("seed", "render", "synths", "ddsp", "out_of_domain")
    return json.dumps({k: CFG[k] for k in keys if k in CFG}, sort_keys=True)


def ddsp_proxy_config():
    """The DDSP proxy study also reads the proxy stage's architectures."""
    keys = ("seed", "render", "synths", "ddsp", "representations", "dataset", "training")
    return json.dumps({k: CFG[k] for k in keys if k in CFG}, sort_keys=True)


def table_files():
    """Every table and figure of the configured stages: the inputs of ``collect_tables`` (``results/tables``)."""
    out = expand("results/analysis/dataset_summary.{ext}", ext=["csv", "md", "tex"])
    out += expand("results/analysis/ranking_{synth}.{ext}", synth=RANKING_SYNTHS, ext=["csv", "md", "tex", "png"])
    if HANDCRAFTED_SYNTHS:
        out += ["results/analysis/handcrafted_import.csv", "results/analysis/handcrafted_import.md"]
        if DIST:
            out += expand("results/analysis/wasserstein.{ext}", ext=["csv", "md", "tex"])
            out += ["results/analysis/umap.png"]
    if TRAINING:
        out += expand("results/analysis/{name}.{ext}", name=["synthetic", "encoder_parameters", "hpo"],
                      ext=["csv", "md", "tex"])
        out += ["results/analysis/training_curves.png"]
        if HANDCRAFTED_TRAINED:
            out += expand("results/analysis/handcrafted.{ext}", ext=["csv", "md", "tex"])
    if OOD:
        out += expand("results/analysis/out_of_domain.{ext}", ext=["csv", "md", "tex"])
    if MATCH_SYNTHS:
        out += expand("results/analysis/{name}.{ext}", name=["matching_in_domain", "matching_out_of_domain",
                                                             "proxy_finetune"], ext=["csv", "md", "tex"])
        out += ["results/analysis/matching_examples.html", "results/analysis/matching_examples"]
    if DDSP_VARIANTS:
        out += expand("results/analysis/{name}.{ext}", ext=["csv", "md", "tex"],
                      name=["ddsp_in_domain", "ddsp_out_of_domain", "ddsp_effects", "ddsp_benchmark"])
        out += ["results/analysis/ddsp_effects.png", "results/analysis/ddsp_benchmark.png"]
        if DDSP.get("proxy") and "fx_env" in DDSP_VARIANTS and TRAINING:
            out += expand("results/analysis/proxy_gradients.{ext}", ext=["csv", "md", "tex", "png"])
            out += expand("results/analysis/proxy_gradients_matching.{ext}", ext=["csv", "md", "tex"])
    return out


def get_final_output():
    """The targets of ``rule all``."""
    return ["results/tables"]
