"""What every CLI module shares: the step registry and argument helpers. Steps parse arguments and call
one function of the package; they hold no logic of their own."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthproxy.errors import SynthProxyError

Configure = Callable[[argparse.ArgumentParser], None]
Step = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Step, Configure]] = {}


def command(name: str, configure: Configure) -> Callable[[Step], Step]:
    """Register a step ``python -m synthproxy <name>`` with its argument parser."""

    def deco(fn: Step) -> Step:
        COMMANDS[name] = (fn, configure)
        return fn

    return deco


def config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--config", help="YAML config file (e.g. config/config.yaml)")
    g.add_argument("--config-json", help="the validated config as JSON (used by the Snakemake rules)")


def load_cfg(args: argparse.Namespace) -> dict[str, Any]:
    from synthproxy.config import config_from_cli

    return config_from_cli(args.config, args.config_json)


def set_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(max(1, int(n)))


def settings_json(text: str | None) -> dict[str, Any]:
    """``--settings-json`` value: a JSON object, or ``@path`` of a JSON file."""
    if not text:
        return {}
    try:
        data = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthProxyError(f"--settings-json: cannot read a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise SynthProxyError("--settings-json: expected a JSON object")
    return data


def explicit(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Arguments given on the command line (they override --settings-json)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
