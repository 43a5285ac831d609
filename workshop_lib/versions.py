"""The one table of pinned versions.

Every manifest, image tag, Helm chart and install step in the kit reads from here. Python packages are pinned in
``workshop_lib/pins/*.txt`` (requirements format, read by ``pyproject.toml``); :func:`python_pins` loads them so
``workshop versions`` prints one table. Nothing is ``:latest`` and nothing is written twice.

Sources for the stack being taught: ``../shared/reference/FACTS.md`` (Dynamo 0.9.0 release notes, the platform chart,
the seed workshop).

Example:
    >>> from workshop_lib.versions import image
    >>> image("vllm-runtime")
    'nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.9.0'
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

DYNAMO = "0.9.0"
NIXL = "0.9.0"

DYNAMO_REGISTRY = "nvcr.io/nvidia/ai-dynamo"
# No -efa runtime images were published for 0.9.0 (they start in 1.1.0), and the stock 0.9.0 runtime images do not
# carry libfabric (built only in the Dockerfiles' wheel-builder stage; no hwloc): NIXL's LIBFABRIC plugin cannot load.
# A LIBFABRIC graph therefore renders this placeholder registry unless worker_image names the user's own EFA image.
EFA_IMAGE_PLACEHOLDER = "REPLACE_WITH_YOUR_EFA_IMAGE"
EFA_BUILD = "container/build.sh --framework {framework} --target runtime --make-efa"
HELM_REPO_URL = "https://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts"


@dataclass(frozen=True, slots=True)
class Pin:
    """One pinned component: its kind, name, version and where the pin comes from."""

    kind: str  # "component", "image", "chart", "python", "system"
    name: str
    version: str
    note: str = ""


# The stack the workshop teaches (FACTS.md, "The stack being taught").
COMPONENTS: dict[str, Pin] = {
    p.name: p
    for p in [
        Pin("component", "dynamo", DYNAMO, "operator, CRDs, frontend, runtime images; released 2026-02-11"),
        Pin("component", "nixl", NIXL, "tag 0.9.0 = ai-dynamo/nixl@2d475e4a"),
        Pin("component", "tensorrt-llm", "1.3.0rc1", "in tensorrtllm-runtime:0.9.0 (1.3.0rc3 also documented); CUDA 13.0"),
        Pin("component", "vllm", "0.14.1", "in vllm-runtime:0.9.0; CUDA 12.9"),
        Pin("component", "cuda", "13.1", "as listed by the seed workshop"),
        Pin("component", "efa-installer", "1.45.1", "used by Dynamo container/build.sh --make-efa"),
        Pin("component", "libfabric", "2.3.1amzn3.0", "EFA installer's libfabric; Dynamo images build v2.3.0"),
        Pin("component", "aiperf", "0.13.0", "benchmark client (in-cluster Job and local comparison)"),
    ]
}

# Container images (FACTS.md; platform chart values for etcd/NATS).
IMAGES: dict[str, Pin] = {
    p.name: p
    for p in [
        Pin("image", "vllm-runtime", f"{DYNAMO_REGISTRY}/vllm-runtime:{DYNAMO}", "vLLM 0.14.1 worker image"),
        Pin("image", "tensorrtllm-runtime", f"{DYNAMO_REGISTRY}/tensorrtllm-runtime:{DYNAMO}", "TRT-LLM worker image"),
        Pin("image", "vllm-runtime-efa", f"{EFA_IMAGE_PLACEHOLDER}/vllm-runtime:{DYNAMO}-efa",
            "placeholder: build it from the Dynamo 0.9.0 tree with " + EFA_BUILD.format(framework="vllm")),
        Pin("image", "tensorrtllm-runtime-efa", f"{EFA_IMAGE_PLACEHOLDER}/tensorrtllm-runtime:{DYNAMO}-efa",
            "placeholder: build it with " + EFA_BUILD.format(framework="trtllm") + " (0.9.0 TRT-LLM docs: UCX only)"),
        Pin("image", "dynamo-frontend", f"{DYNAMO_REGISTRY}/dynamo-frontend:{DYNAMO}", "OpenAI frontend"),
        Pin("image", "kubernetes-operator", f"{DYNAMO_REGISTRY}/kubernetes-operator:{DYNAMO}", "operator (tag fix)"),
        Pin("image", "etcd", "docker.io/bitnamilegacy/etcd:3.5.18-debian-12-r5", "bundled by dynamo-platform 0.9.0"),
        Pin("image", "nats", "docker.io/library/nats:2.10.21-alpine", "bundled by dynamo-platform 0.9.0"),
        Pin("image", "aiperf", "docker.io/library/python:3.11.11-slim-bookworm", "aiperf Job runs pip-pinned aiperf"),
        Pin(
            "image",
            "efa-device-plugin",
            "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-efa-k8s-device-plugin:v0.5.4",
            "EKS EFA device plugin: appVersion v0.5.4 of chart aws-efa-k8s-device-plugin v0.5.6",
        ),
        Pin("image", "gdrcopy-installer", "docker.io/library/ubuntu:22.04", "runs the pinned gdrcopy install script"),
    ]
}

# Helm charts.
CHARTS: dict[str, Pin] = {
    p.name: p
    for p in [
        Pin("chart", "dynamo-crds", DYNAMO, "install in namespace default"),
        Pin("chart", "dynamo-platform", DYNAMO, "operator image tag forced to 0.9.0 (chart falls back to 0.7.1)"),
        Pin("chart", "nats", "1.3.2", "sub-chart of dynamo-platform"),
        Pin("chart", "etcd", "12.0.18", "bitnami sub-chart of dynamo-platform"),
        Pin("chart", "aws-efa-k8s-device-plugin", "v0.5.6", "eks-charts; ships appVersion (image) v0.5.4"),
        Pin("system", "gdrcopy", "2.4.4", "GDRCopy installer DaemonSet"),
    ]
}

# What the local lab builds or installs outside pip.
SYSTEM: dict[str, Pin] = {
    p.name: p
    for p in [
        Pin("system", "etcd-server", "3.4.23", "Debian 12 package (apt)"),
        Pin("system", "libfabric-lab", "2.1.0", "built from Debian trixie source for the local LIBFABRIC lab"),
        Pin("system", "libhwloc15", "2.9.0", "Debian 12 package, runtime dependency of the NIXL LIBFABRIC plugin"),
    ]
}

OPERATOR_IMAGE_TAG_FIX = "dynamo-operator.controllerManager.manager.image.tag"


def image(name: str) -> str:
    """Return the pinned image reference for ``name`` (a key of :data:`IMAGES`)."""
    try:
        return IMAGES[name].version
    except KeyError:
        raise KeyError(f"no pinned image named {name!r}; known: {', '.join(sorted(IMAGES))}") from None


def is_efa_placeholder(image_ref: str) -> bool:
    """True for the placeholder a LIBFABRIC graph renders until the user names an image built with EFA."""
    return image_ref.startswith(EFA_IMAGE_PLACEHOLDER + "/")


def stock_runtime_without_libfabric(image_ref: str) -> bool:
    """True for a stock Dynamo runtime image (``nvcr.io/nvidia/ai-dynamo/*-runtime:<tag>`` with no ``efa`` in the tag).

    The 0.9.0 ones copy UCX and NIXL into the runtime stage but not libfabric, so NIXL's LIBFABRIC plugin cannot load
    (Dynamo publishes separate ``-efa`` images from 1.1.0 on).

    >>> stock_runtime_without_libfabric(image("vllm-runtime")), stock_runtime_without_libfabric("my.ecr/vllm:0.9.0-efa")
    (True, False)
    """
    repo, _, tag = image_ref.rpartition(":")
    if not repo.startswith(DYNAMO_REGISTRY + "/") or not repo.endswith("-runtime") or "@" in image_ref:
        return False
    return "efa" not in tag.lower()


def chart_version(name: str) -> str:
    """Return the pinned chart version for ``name`` (a key of :data:`CHARTS`)."""
    return CHARTS[name].version


def _pins_dir() -> Path:
    return Path(str(resources.files("workshop_lib") / "pins"))


def python_pins(group: str | None = None) -> dict[str, Pin]:
    """Python packages pinned in ``workshop_lib/pins/<group>.txt`` (all groups when ``group`` is None)."""
    out: dict[str, Pin] = {}
    files = sorted(_pins_dir().glob("*.txt")) if group is None else [_pins_dir() / f"{group}.txt"]
    for f in files:
        for raw in f.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            name, _, ver = line.partition("==")
            name = name.split("[", 1)[0].strip()
            out[name] = Pin("python", name, ver.split(";", 1)[0].strip(), f"pins/{f.stem}.txt")
    return out


def nixl_wheels() -> list[str]:
    """The NIXL wheels, installed with ``--no-deps`` so pip does not pull a CUDA torch (LOCAL-LAB.md)."""
    return [f"{p.name}=={p.version}" for p in python_pins("nixl").values()]


def table() -> list[Pin]:
    """Every pin, in print order."""
    return [*COMPONENTS.values(), *IMAGES.values(), *CHARTS.values(), *SYSTEM.values(), *python_pins().values()]


def check_no_latest() -> list[str]:
    """Names of pins that are unpinned (``:latest``, empty or a range); an empty list means all good."""
    bad = []
    for p in table():
        v = p.version
        if not v or v.endswith(":latest") or any(c in v for c in "<>*~^") or (p.kind == "image" and ":" not in v):
            bad.append(p.name)
    return bad
