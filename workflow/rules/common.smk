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
SPLITS = list(CFG["dataset"]["splits"])


def n_shards(split):
    s = CFG["dataset"]["splits"][split]
    return -(-s["size"] // s["shard_size"])


def dataset_config(synth):
    """The config slice a dataset step depends on: changing anything else never re-renders data."""
    keys = ("seed", "render", "representations", "dataset")
    return json.dumps({**{k: CFG[k] for k in keys}, "synths": {synth: CFG["synths"][synth]}}, sort_keys=True)


def store(synth, split):
    return f"results/data/{synth}/{split}.zarr"
