"""Profiles: which manifests each workshop section applies, rendered from one :class:`WorkshopConfig`.

A profile is a name (``platform``, ``single-node``, ``cross-node``, ``bench`` and their variants) that maps a config
to a list of :class:`RenderedFile`. Each file starts with a header naming the command and the versions used.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> [f.path for f in render(WorkshopConfig(), "cross-node-ucx")]
    ['03-cross-node/vllm-xnode-ucx.yaml']
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workshop_lib.config import FRAMEWORKS, KV_BACKENDS, WorkshopConfig
from workshop_lib.errors import ConfigError
from workshop_lib.manifests import addons, bench, dgd, helm
from workshop_lib.manifests.documents import RenderedFile, dump_docs, dump_yaml, header

ALL_COMMAND = "workshop render --all --out manifests"
DIRS = {"platform": "01-platform", "single-node": "02-single-node", "cross-node": "03-cross-node", "bench": "04-bench"}


@dataclass(frozen=True)
class Profile:
    """A renderable profile: its section, config overrides it implies, and the options ``--set`` may give it."""

    name: str
    section: str
    overrides: dict[str, str]
    options: dict[str, str]
    help: str


def _profiles() -> dict[str, Profile]:
    out: dict[str, Profile] = {}

    def add(name: str, section: str, overrides: dict[str, str], options: dict[str, str], help: str) -> None:
        out[name] = Profile(name, section, overrides, options, help)

    add("platform", "platform", {}, {}, "section 1: Helm values, install commands, EFA/GDRCopy add-ons, HF secret template")
    add("single-node", "single-node", {}, {}, "section 2: disaggregated graph on one node (cfg.framework)")
    for fw in FRAMEWORKS:
        add(f"single-node-{fw}", "single-node", {"framework": fw}, {}, f"section 2 with {fw}")
    layout = {"layout": "single"}
    add("cross-node", "cross-node", {}, layout, "section 3: prefill and decode on two EFA nodes (cfg.kv_backend)")
    for be in KV_BACKENDS:
        add(f"cross-node-{be.lower()}", "cross-node", {"kv_backend": be}, layout, f"section 3 with NIXL {be}")
    add("bench", "bench", {}, {"seg_type": "VRAM", "concurrency": ",".join(map(str, bench.CONCURRENCY))},
        "section 4: aiperf sweep Job and nixlbench pair")
    return out


PROFILES: dict[str, Profile] = _profiles()


def _split_sets(profile: Profile, sets: dict[str, str] | None) -> tuple[dict[str, str], dict[str, str]]:
    fields = set(WorkshopConfig.field_names())
    cfg_sets: dict[str, str] = {}
    options = dict(profile.options)
    for key, value in (sets or {}).items():
        k = key.strip().lower()
        if k in fields:
            cfg_sets[k] = value
        elif k in options:
            options[k] = value
        else:
            known = sorted(fields | set(options))
            raise ConfigError(f"--set {key}", f"unknown key for profile {profile.name!r}", f"use one of {', '.join(known)}")
    return cfg_sets, options


def _concurrency(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) <= 0:
        raise ConfigError("--set concurrency", f"{text!r} is not a list of positive integers", "write e.g. concurrency=1,5,10,20")
    return values


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    v = value.strip()
    if v.lower() not in [a.lower() for a in allowed]:
        raise ConfigError(f"--set {key}", f"{value!r} is not allowed", f"use one of {', '.join(allowed)}")
    return next(a for a in allowed if a.lower() == v.lower())


def config_notes(cfg: WorkshopConfig) -> list[str]:
    """``Config: ...`` header line listing the fields that differ from the defaults (stable order)."""
    ref = WorkshopConfig(framework=cfg.framework)
    diff = [f"{k}={v}" for k, v in cfg.to_dict().items() if v != getattr(ref, k) or k in ("framework", "kv_backend", "model")]
    return ["Config: " + ", ".join(diff)]


def _file(path: str, docs: list[dict[str, Any]], head: str) -> RenderedFile:
    return RenderedFile(path, docs, head + dump_docs(docs))


def _render_platform(cfg: WorkshopConfig, head: str, opts: dict[str, str]) -> list[RenderedFile]:
    d = DIRS["platform"]
    platform = helm.platform_releases(cfg)[1]
    addon_files = ["namespace.yaml", "efa-device-plugin.yaml", "gdrcopy-installer.yaml"]
    secret_note = ["Template only: install.sh and the notebooks create this Secret from $HF_TOKEN instead.",
                   "Never commit a copy with a real token in it."]
    secret_head = head + "".join(f"# {n}\n" for n in secret_note)
    return [
        RenderedFile(f"{d}/install.sh", [], helm.install_script(cfg, head, addon_files)),
        RenderedFile(f"{d}/{helm.VALUES_FILE}", [platform.values], head + dump_yaml(platform.values)),
        _file(f"{d}/namespace.yaml", [addons.namespace(cfg)], head),
        _file(f"{d}/efa-device-plugin.yaml", [addons.efa_device_plugin(cfg)], head),
        _file(f"{d}/gdrcopy-installer.yaml", addons.gdrcopy_installer(cfg), head),
        _file(f"{d}/hf-token-secret.template.yaml", [addons.hf_secret_template(cfg)], secret_head),
    ]


def _graph_docs(cfg: WorkshopConfig, graph: dict[str, Any]) -> list[dict[str, Any]]:
    return ([dgd.trtllm_engine_configmap(cfg, graph)] if cfg.framework == "trtllm" else []) + [graph]


def _render_single(cfg: WorkshopConfig, head: str, opts: dict[str, str]) -> list[RenderedFile]:
    graph = dgd.base_dgd(cfg, "single-node")
    return [_file(f"{DIRS['single-node']}/{graph['metadata']['name']}.yaml", _graph_docs(cfg, graph), head)]


def _render_cross(cfg: WorkshopConfig, head: str, opts: dict[str, str]) -> list[RenderedFile]:
    layout = _choice("layout", opts["layout"], ("single", "multi"))
    graph = dgd.apply_overlays(cfg, dgd.base_dgd(cfg, "cross-node"), ["efa", "cross-node"])
    name = graph["metadata"]["name"]
    if layout == "multi":
        docs = ([dgd.trtllm_engine_configmap(cfg, graph)] if cfg.framework == "trtllm" else []) + dgd.split_multi_dgd(cfg, graph)
        return [_file(f"{DIRS['cross-node']}/{name}-multi.yaml", docs, head)]
    return [_file(f"{DIRS['cross-node']}/{name}.yaml", _graph_docs(cfg, graph), head)]


def _render_bench(cfg: WorkshopConfig, head: str, opts: dict[str, str]) -> list[RenderedFile]:
    seg = _choice("seg_type", opts["seg_type"], bench.SEG_TYPES)
    target = dgd.dgd_name(cfg, "cross-node")
    d = DIRS["bench"]
    return [
        _file(f"{d}/aiperf-{target}.yaml", [bench.aiperf_job(cfg, target, _concurrency(opts["concurrency"]))], head),
        _file(f"{d}/nixlbench-{cfg.kv_backend.lower()}-{seg.lower()}.yaml", bench.nixlbench_pods(cfg, seg), head),
    ]


_RENDERERS: dict[str, Callable[[WorkshopConfig, str, dict[str, str]], list[RenderedFile]]] = {
    "platform": _render_platform, "single-node": _render_single, "cross-node": _render_cross, "bench": _render_bench,
}


def get_profile(name: str) -> Profile:
    """The :class:`Profile` called ``name``.

    Raises:
        ConfigError: an unknown profile, listing the known ones.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError("--profile", f"unknown profile {name!r}", f"use one of {', '.join(PROFILES)}") from None


def render(cfg: WorkshopConfig, profile: str, sets: dict[str, str] | None = None, command: str | None = None) -> list[RenderedFile]:
    """Render ``profile`` from ``cfg`` plus ``sets`` (config fields or the profile's options).

    Raises:
        ConfigError: an unknown profile, an unknown ``--set`` key or a bad value.
    """
    prof = get_profile(profile)
    cfg_sets, opts = _split_sets(prof, sets)
    base = cfg.to_dict()
    if base["worker_image"] == WorkshopConfig(framework=cfg.framework).worker_image:
        base["worker_image"] = None  # the framework's default image follows a framework change
    cfg = WorkshopConfig.from_params({**base, **cfg_sets, **prof.overrides})
    cfg.check_profile(prof.section)
    if command is None:
        command = f"workshop render --profile {profile}" + "".join(f" --set {shlex.quote(f'{k}={v}')}" for k, v in (sets or {}).items())
    head = header(command, config_notes(cfg))
    return _RENDERERS[prof.section](cfg, head, opts)


def render_all(cfg: WorkshopConfig | None = None) -> list[RenderedFile]:
    """Everything committed under ``manifests/``: each section, both frameworks, both NIXL backends."""
    cfg = cfg or WorkshopConfig()
    out = render(cfg, "platform", command=ALL_COMMAND)
    for fw in FRAMEWORKS:
        for be in KV_BACKENDS:
            sets = {"framework": fw, "kv_backend": be}
            out += render(cfg, "single-node", sets, command=ALL_COMMAND)
            out += render(cfg, "cross-node", sets, command=ALL_COMMAND)
    for be in KV_BACKENDS:
        out += render(cfg, "bench", {"kv_backend": be}, command=ALL_COMMAND)
    return out


def write_files(files: list[RenderedFile], out: str | os.PathLike[str]) -> list[Path]:
    """Write rendered files under ``out`` (directories created; scripts made executable)."""
    written = []
    for f in files:
        p = Path(out) / f.path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f.text)
        if p.suffix == ".sh":
            p.chmod(0o755)
        written.append(p)
    return written


def render_to_dir(cfg: WorkshopConfig, profile: str, out: str | os.PathLike[str], sets: dict[str, str] | None = None) -> list[Path]:
    """:func:`render` and write the files under ``out``; returns the paths written."""
    return write_files(render(cfg, profile, sets), out)
