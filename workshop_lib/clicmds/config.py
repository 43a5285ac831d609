"""``workshop config``: show the validated configuration built from a file, the environment and --set."""

from __future__ import annotations

import argparse
import json

from workshop_lib.config import WorkshopConfig
from workshop_lib.errors import ConfigError


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` -> dict, with an error naming the bad item."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"{item!r} is not key=value", "write e.g. --set kv_backend=UCX")
        out[key.strip()] = value
    return out


def load(args: argparse.Namespace) -> WorkshopConfig:
    """The config named by ``--config`` (or the environment) plus ``--set`` overrides."""
    cfg = WorkshopConfig.from_yaml(args.config) if getattr(args, "config", None) else WorkshopConfig.from_env()
    sets = parse_sets(getattr(args, "set", None))
    if sets:
        cfg = WorkshopConfig.from_params({**cfg.to_dict(), **sets})
    return cfg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config", help="print the validated workshop configuration",
        epilog="Every field can also come from the environment as WORKSHOP_<FIELD> (e.g. WORKSHOP_KV_BACKEND=UCX). "
               "On a small machine (no GPU, little memory) set WORKSHOP_ENGINE=mocker: the lab and the notebooks then "
               "use Dynamo's mocker engine instead of vLLM (the default, engine=vllm).",
    )
    p.add_argument("--config", help="YAML file of parameters")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(load(args).to_dict(), indent=2))
    return 0
