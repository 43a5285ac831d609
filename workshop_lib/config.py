"""``WorkshopConfig``: one typed, validated configuration for every notebook, manifest and command.

Build it from notebook parameters, a YAML file or the environment; every bad value raises
:class:`~workshop_lib.errors.ConfigError` naming the field and the fix.

Example:
    >>> cfg = WorkshopConfig.from_params({"TARGET": "local", "KV_BACKEND": "libfabric"})
    >>> cfg.kv_backend, cfg.instance.efa
    ('LIBFABRIC', 32)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from workshop_lib import versions
from workshop_lib.errors import ConfigError


@dataclass(frozen=True, slots=True)
class InstanceType:
    """GPU and EFA counts of an EC2 GPU instance type (awsome-distributed-training instance profiles)."""

    name: str
    gpus: int
    efa: int
    gpu_model: str
    efa_gbps_total: int


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in [
        InstanceType("p5.48xlarge", 8, 32, "H100", 3200),
        InstanceType("p5en.48xlarge", 8, 16, "H200", 3200),
        InstanceType("p4d.24xlarge", 8, 4, "A100", 400),
        InstanceType("p6-b200.48xlarge", 8, 8, "B200", 3200),
    ]
}

TARGETS = ("local", "eks")
FRAMEWORKS = ("vllm", "trtllm")
KV_BACKENDS = ("UCX", "LIBFABRIC")
PROFILES = ("platform", "single-node", "cross-node", "bench")

# Worker memory needed for NIXL LIBFABRIC on a many-EFA instance (seed workshop: 64Gi was OOMKilled at init).
LIBFABRIC_MIN_MEMORY = "128Gi"

_QUANTITY = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
_SUFFIX = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def parse_quantity(value: str | int | float, field_name: str = "quantity") -> float:
    """Parse a Kubernetes quantity (``128Gi``, ``500m``, ``16``) into a number (bytes for memory).

    Raises:
        ConfigError: when ``value`` is not a quantity.

    >>> parse_quantity("128Gi") == 128 * 2**30
    True
    """
    if isinstance(value, bool):
        raise ConfigError(field_name, f"{value!r} is not a Kubernetes quantity", "use e.g. 128Gi, 16Gi or 500m")
    if isinstance(value, (int, float)):
        return float(value)
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ConfigError(field_name, f"{value!r} is not a Kubernetes quantity", "use e.g. 128Gi, 16Gi or 500m")
    return float(m["num"]) * _SUFFIX[m["suffix"]]


def _default_worker_image(framework: str) -> str:
    return versions.image("vllm-runtime" if framework == "vllm" else "tensorrtllm-runtime")


@dataclass(frozen=True)
class WorkshopConfig:
    """All workshop parameters. Field names are the lower-case form of the notebooks' papermill parameters."""

    target: str = "local"
    namespace: str = "dynamo-workshop"
    platform_namespace: str = "dynamo-system"
    dynamo_namespace: str = "workshop"
    model: str = "Qwen/Qwen3-0.6B"
    framework: str = "vllm"
    kv_backend: str = "LIBFABRIC"
    instance_type: str = "p5.48xlarge"
    prefill_node: str | None = None
    decode_node: str | None = None
    frontend_image: str = field(default_factory=lambda: versions.image("dynamo-frontend"))
    worker_image: str | None = None  # None: the runtime image of ``framework``
    gpus_per_worker: int = 1
    efa_per_worker: int | None = None  # None: all EFA devices of the instance type
    worker_memory: str = LIBFABRIC_MIN_MEMORY
    worker_cpu: str = "16"
    shm_size: str = "16Gi"
    hugepages_2mi: str = "5120Mi"
    frontend_port: int = 8000
    frontend_system_port: int = 9090
    prefill_system_port: int = 9091
    decode_system_port: int = 9190
    hf_token_secret: str = "hf-token-secret"
    nixl_log_level: str = "INFO"
    fi_log_level: str = "info"
    deploy_timeout_s: int = 1800
    price_per_node_hour: float = 55.04
    isl: int = 512
    osl: int = 128

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        # Normalise case-insensitive enums first (frozen dataclass: use object.__setattr__).
        object.__setattr__(self, "target", str(self.target).lower())
        object.__setattr__(self, "framework", str(self.framework).lower().replace("-", "").replace("_", ""))
        object.__setattr__(self, "kv_backend", str(self.kv_backend).upper())
        if self.worker_image is None:
            object.__setattr__(self, "worker_image", _default_worker_image(self.framework if self.framework in FRAMEWORKS else "vllm"))
        self._validate()

    def _validate(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError("target", f"{self.target!r} is not a target", f"use one of {', '.join(TARGETS)}")
        if self.framework not in FRAMEWORKS:
            raise ConfigError("framework", f"{self.framework!r} is not supported", "use vllm or trtllm")
        if self.kv_backend not in KV_BACKENDS:
            raise ConfigError(
                "kv_backend", f"{self.kv_backend!r} is not a NIXL backend the workshop teaches", "use UCX or LIBFABRIC"
            )
        if self.instance_type not in INSTANCE_TYPES:
            raise ConfigError(
                "instance_type",
                f"unknown instance type {self.instance_type!r}",
                f"use one of {', '.join(INSTANCE_TYPES)}",
            )
        for name in ("namespace", "platform_namespace", "dynamo_namespace", "hf_token_secret"):
            v = getattr(self, name)
            if not isinstance(v, str) or len(v) > 63 or not _DNS1123.match(v):
                raise ConfigError(name, f"{v!r} is not a valid Kubernetes name", "use lower-case letters, digits and '-'")
        for name in ("worker_memory", "shm_size", "hugepages_2mi", "worker_cpu"):
            parse_quantity(getattr(self, name), name)
        for name in ("prefill_node", "decode_node"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise ConfigError(name, f"{v!r} is not a node name", "give the node's name or leave it None")
        for name in ("gpus_per_worker", "frontend_port", "frontend_system_port", "prefill_system_port",
                     "decode_system_port", "deploy_timeout_s", "isl", "osl"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ConfigError(name, f"{v!r} must be a positive integer", f"set {name} to e.g. {getattr(WorkshopConfig, name, 1)}")
        for name in ("frontend_port", "frontend_system_port", "prefill_system_port", "decode_system_port"):
            if getattr(self, name) > 65535:
                raise ConfigError(name, f"{getattr(self, name)} is not a TCP port", "use a port in 1-65535")
        ports = [self.frontend_system_port, self.prefill_system_port, self.decode_system_port]
        if len(set(ports)) != 3:
            raise ConfigError(
                "prefill_system_port",
                f"DYN_SYSTEM_PORTs must differ in the multi-DGD pattern, got {ports}",
                "use e.g. 9090 (frontend), 9091 (prefill), 9190 (decode)",
            )
        inst = INSTANCE_TYPES[self.instance_type]
        if self.gpus_per_worker > inst.gpus:
            raise ConfigError("gpus_per_worker", f"{self.gpus_per_worker} > {inst.gpus} GPUs on {inst.name}", f"use 1-{inst.gpus}")
        if self.efa_per_worker is not None:
            if isinstance(self.efa_per_worker, bool) or not isinstance(self.efa_per_worker, int) or not 0 <= self.efa_per_worker <= inst.efa:
                raise ConfigError(
                    "efa_per_worker", f"{self.efa_per_worker!r} is outside 0-{inst.efa} for {inst.name}", f"use 1-{inst.efa} or None for all"
                )
        if not isinstance(self.price_per_node_hour, (int, float)) or self.price_per_node_hour < 0:
            raise ConfigError("price_per_node_hour", f"{self.price_per_node_hour!r} is not a price", "use USD per node-hour, e.g. 55.04")
        if self.nixl_log_level.upper() not in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"):
            raise ConfigError("nixl_log_level", f"{self.nixl_log_level!r} is not a NIXL log level", "use INFO (needed to verify the backend)")

    # ------------------------------------------------------------------ derived values
    @property
    def instance(self) -> InstanceType:
        """The :class:`InstanceType` of ``instance_type``."""
        return INSTANCE_TYPES[self.instance_type]

    @property
    def efa_devices(self) -> int:
        """EFA devices each worker requests (``efa_per_worker`` or all of the instance's)."""
        return self.instance.efa if self.efa_per_worker is None else self.efa_per_worker

    @property
    def worker_memory_bytes(self) -> float:
        return parse_quantity(self.worker_memory, "worker_memory")

    def check_profile(self, profile: str) -> None:
        """Check what a manifest profile needs beyond the field checks.

        Raises:
            ConfigError: an unknown profile, or prefill and decode pinned to one node in the cross-node profile.
        """
        base = profile.split("-", 2)
        if profile not in PROFILES and "-".join(base[:2]) not in PROFILES:
            raise ConfigError("profile", f"unknown profile {profile!r}", f"use one of {', '.join(PROFILES)}")
        if profile.startswith("cross-node") and self.prefill_node and self.prefill_node == self.decode_node:
            raise ConfigError(
                "decode_node",
                f"prefill and decode are both pinned to {self.prefill_node!r} in the cross-node profile",
                "pin them to two different nodes in one availability zone (or leave both None for anti-affinity)",
            )

    def replace(self, **changes: Any) -> WorkshopConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, strict: bool = True) -> WorkshopConfig:
        """Build from notebook parameters (``TARGET``, ``KV_BACKEND``...) or field names; case-insensitive keys.

        Unknown keys raise (``strict``) or are ignored, so a notebook can pass ``globals()``-like mappings with
        ``strict=False``.
        """
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            name = str(key).lower()
            if name not in known:
                if strict:
                    raise ConfigError(str(key), "unknown parameter", f"use one of {', '.join(known)}")
                continue
            kwargs[name] = _coerce(name, value, known[name].type)
        try:
            return cls(**kwargs)
        except TypeError as exc:  # pragma: no cover - defensive
            raise ConfigError("parameters", str(exc), "check the parameter names") from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> WorkshopConfig:
        """Build from a YAML mapping of parameters; errors name the file (and line for YAML syntax)."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(str(p), f"cannot read the config file ({exc.strerror})", "check the path") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark else str(p)
            raise ConfigError(where, f"invalid YAML ({getattr(exc, 'problem', exc)})", "fix the syntax at that line") from None
        if not isinstance(data, dict):
            raise ConfigError(str(p), "the file must hold a mapping of parameters", "write e.g. 'kv_backend: LIBFABRIC'")
        try:
            return cls.from_params(data)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc.where}", exc.problem, exc.fix) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, prefix: str = "WORKSHOP_") -> WorkshopConfig:
        """Build from ``WORKSHOP_<FIELD>`` environment variables (e.g. ``WORKSHOP_KV_BACKEND=UCX``)."""
        env = os.environ if environ is None else environ
        known = set(cls.field_names())
        params = {k[len(prefix):].lower(): v for k, v in env.items() if k.startswith(prefix) and k[len(prefix):].lower() in known}
        return cls.from_params(params)


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Turn strings (from the environment, ``--set`` or papermill) into the field's type, with a clear error."""
    ann = str(annotation)
    if value is None or not isinstance(value, str):
        return value
    text = value.strip()
    if "None" in ann and text.lower() in ("", "none", "null"):
        return None
    if ann.startswith("int"):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(name, f"{value!r} is not an integer", f"set {name} to a whole number") from None
    if ann.startswith("float"):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(name, f"{value!r} is not a number", f"set {name} to a number") from None
    return text
