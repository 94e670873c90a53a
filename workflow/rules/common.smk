# Shared helpers: config validation at start, per-stage config slices, the python that runs the steps.
import json
import os
import sys

from snakemake.exceptions import WorkflowError

from synthproxy.config import validate_config
from synthproxy.errors import SynthProxyError
from synthproxy.synths.engines import check_plugin_path
from synthproxy.synths.spec import load_spec

# Rules run `python -m synthproxy ...`: make `python` the interpreter running Snakemake (the project's
# .venv) even when the venv is not activated; with --use-conda the rule's env comes first on PATH.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

try:
    CFG = validate_config(config)
    SPECS = {name: load_spec(s["spec"]) for name, s in CFG["synths"].items()}
    for _name, _spec in SPECS.items():
        if _spec.engine == "vst":
            check_plugin_path(CFG["synths"][_name].get("plugin") or _spec.plugin, _name)
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


def dataset_config(synth):
    return stage_config(synth, "representations", "dataset")


def ranking_config(synth):
    rk = dict(CFG["ranking"], synths={synth: CFG["ranking"]["synths"][synth]})
    return json.dumps({**json.loads(stage_config(synth)), "ranking": rk}, sort_keys=True)


def ranking_groups(synth):
    from synthproxy.analysis.ranking import load_groups, slug

    return [slug(g.name) for g in load_groups(CFG["ranking"]["synths"][synth], SPECS[synth])]


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
