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
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workshop_lib import versions
from workshop_lib.config import FRAMEWORKS, KV_BACKENDS, WorkshopConfig
from workshop_lib.errors import ConfigError
from workshop_lib.manifests import addons, bench, dgd, helm
from workshop_lib.manifests.documents import RenderedFile, dump_docs, dump_yaml, header
from workshop_lib.parsing import parse_concurrency

ALL_COMMAND = "workshop render --all --out manifests"
DIRS = {"platform": "01-platform", "single-node": "02-single-node", "cross-node": "03-cross-node", "bench": "04-bench"}


@dataclass(frozen=True)
class Profile:
    """A renderable profile: its section, config overrides it implies, and the options ``--set`` may give it.

    ``defaults`` are config values the profile uses unless ``--set`` names the field (they win over the config:
    ``single-node`` renders UCX whatever ``cfg.kv_backend``, the cross-node lesson's backend, says).
    """

    name: str
    section: str
    overrides: dict[str, str]
    options: dict[str, str]
    help: str
    defaults: dict[str, str] = field(default_factory=dict)


def _profiles() -> dict[str, Profile]:
    out: dict[str, Profile] = {}

    def add(name: str, section: str, overrides: dict[str, str], options: dict[str, str], help: str,
            defaults: dict[str, str] | None = None) -> None:
        out[name] = Profile(name, section, overrides, options, help, defaults or {})

    add("platform", "platform", {}, {}, "section 1: Helm values, install commands, EFA/GDRCopy add-ons, HF secret template")
    ucx = {"kv_backend": "UCX"}
    add("single-node", "single-node", {}, {}, "section 2: disaggregated graph on one node over UCX (cuda_ipc over "
        "NVLink; --set kv_backend=LIBFABRIC adds the EFA overlay)", ucx)
    for fw in FRAMEWORKS:
        add(f"single-node-{fw}", "single-node", {"framework": fw}, {}, f"section 2 with {fw} (UCX)", ucx)
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
    return tuple(parse_concurrency(text, where="--set concurrency", example="concurrency=1,5,10,20"))


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
    if cfg.kv_backend == "LIBFABRIC":
        # Without EFA, NIXL LIBFABRIC finds only a `sockets` device (TCP) and registers GPU memory as host memory.
        graph = dgd.apply_overlays(cfg, graph, ["efa"])
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
        raise ConfigError("profile", f"unknown profile {name!r}", f"use one of {', '.join(PROFILES)}") from None


def render(cfg: WorkshopConfig, profile: str, sets: dict[str, str] | None = None, command: str | None = None) -> list[RenderedFile]:
    """Render ``profile`` from ``cfg`` plus ``sets`` (config fields or the profile's options).

    Raises:
        ConfigError: an unknown profile, an unknown ``--set`` key or a bad value.
    """
    prof = get_profile(profile)
    cfg = profile_config(cfg, profile, sets)
    opts = _split_sets(prof, sets)[1]
    if command is None:
        command = f"workshop render --profile {profile}" + "".join(f" --set {shlex.quote(f'{k}={v}')}" for k, v in (sets or {}).items())
    notes = [line for note in graph_notes(cfg, prof.section) for line in textwrap.wrap(note, 116, break_on_hyphens=False)]
    head = header(command, config_notes(cfg) + notes)
    return _RENDERERS[prof.section](cfg, head, opts)


def profile_config(cfg: WorkshopConfig, profile: str, sets: dict[str, str] | None = None) -> WorkshopConfig:
    """The config ``profile`` renders from: ``cfg``, then the profile's defaults, ``sets``, the profile's overrides.

    Raises:
        ConfigError: an unknown profile, an unknown ``--set`` key, a bad value, or a ``--set`` that contradicts the
            profile (``--profile cross-node-ucx --set kv_backend=LIBFABRIC``).
    """
    prof = get_profile(profile)
    cfg_sets, _ = _split_sets(prof, sets)
    for key, value in cfg_sets.items():
        if key in prof.overrides and str(value).strip().lower() != prof.overrides[key].lower():
            raise ConfigError(f"--set {key}", f"profile {prof.name!r} fixes {key}={prof.overrides[key]}",
                              f"drop --set {key} or use the profile {prof.section!r}")
    base = cfg.to_dict()
    if base["worker_image"] == WorkshopConfig(framework=cfg.framework).worker_image:
        base["worker_image"] = None  # the framework's default image follows a framework change
    out = WorkshopConfig.from_params({**base, **prof.defaults, **cfg_sets, **prof.overrides})
    out.check_profile(prof.section)
    return out


def graph_backend(cfg: WorkshopConfig, profile: str, sets: dict[str, str] | None = None) -> str:
    """The NIXL backend (``UCX``/``LIBFABRIC``) the graph of ``profile`` moves KV with (``single-node``: UCX).

    >>> graph_backend(WorkshopConfig(kv_backend="LIBFABRIC"), "single-node")
    'UCX'
    """
    return profile_config(cfg, profile, sets).kv_backend


def graph_notes(cfg: WorkshopConfig, section: str) -> list[str]:
    """Header lines saying what a graph needs that the YAML cannot show (the image for LIBFABRIC, the EFA count)."""
    if section not in ("single-node", "cross-node", "bench"):
        return []
    notes: list[str] = []
    if cfg.kv_backend == "LIBFABRIC":
        image = dgd.worker_image(cfg)
        if versions.is_efa_placeholder(image):
            notes.append(f"Needs an image built with EFA: replace {image} (worker_image) with yours.")
        notes += [
            "The stock 0.9.0 runtime images have no libfabric: NIXL's LIBFABRIC plugin cannot load in them.",
            f"Build: {versions.EFA_BUILD.format(framework=cfg.framework)} (Dynamo 0.9.0 tree).",
            "Check a worker: fi_info -p efa; ldd $NIXL_PLUGIN_DIR/libplugin_LIBFABRIC.so (no 'not found').",
        ]
        if cfg.framework == "trtllm":
            notes += [f"TRT-LLM: {TRTLLM_LIBFABRIC_NOTE}"]
        if section == "single-node":
            notes.append("One node: prefill and decode over EFA on the same node can stall with 'fi_read still "
                         "retrying EAGAIN' (Dynamo disagg guide); UCX (cuda_ipc over NVLink) is the single-node default.")
    if section != "single-node" or cfg.kv_backend == "LIBFABRIC":
        notes.append(efa_count_note(cfg))
    return notes


TRTLLM_LIBFABRIC_NOTE = ("Dynamo 0.9.0's TRT-LLM docs (docs/backends/trtllm/kv-cache-transfer.md) support only UCX in "
                         "tensorrtllm-runtime:0.9.0; the seed workshop's LIBFABRIC numbers came from a TRT-LLM image "
                         "with a patched NIXL 0.8.0 ('Patched NIXL 0.8.0 + 11 patches'), not from this image.")


def efa_count_note(cfg: WorkshopConfig) -> str:
    """Why each worker requests ``cfg.efa_devices`` EFA when NIXL 0.9.0 registers VRAM only on the GPU-local ones."""
    local = dgd.gpu_local_efa(cfg)
    if cfg.efa_devices <= local:
        return (f"EFA: {cfg.efa_devices} per worker (GPU-proportional; NIXL 0.9.0 registers VRAM only on the GPU's "
                f"{local} local EFA, and only if the scheduler gave this pod those devices).")
    return (f"EFA: {cfg.efa_devices} per worker, though NIXL 0.9.0 registers VRAM only on the {local} EFA local to the "
            f"worker's {cfg.gpus_per_worker} GPU(s). Kubernetes allocates EFA and GPUs separately (the Topology "
            f"Manager aligns at most by NUMA node), so a smaller request need not hold the GPU's local EFA; all "
            f"{cfg.efa_devices} make sure it does, and each extra rail costs registered host memory (a 32 MiB control "
            f"pool). --set efa_per_worker={local} asks for the GPU-proportional share instead.")


def render_all(cfg: WorkshopConfig | None = None) -> list[RenderedFile]:
    """Everything committed under ``manifests/``: each section, both frameworks, both NIXL backends across nodes.

    One node is UCX only: same-node EFA gives ``fi_read still retrying EAGAIN`` (Dynamo disagg guide), and without
    EFA NIXL LIBFABRIC falls back to a ``sockets`` device.
    """
    cfg = cfg or WorkshopConfig()
    out = render(cfg, "platform", command=ALL_COMMAND)
    for fw in FRAMEWORKS:
        out += render(cfg, "single-node", {"framework": fw}, command=ALL_COMMAND)  # UCX: cuda_ipc over NVLink
        for be in KV_BACKENDS:
            out += render(cfg, "cross-node", {"framework": fw, "kv_backend": be}, command=ALL_COMMAND)
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
