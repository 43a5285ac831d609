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
import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from workshop_lib import versions
from workshop_lib.choices import ENGINES, FRAMEWORKS, KV_BACKENDS, PROFILES, TARGETS
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

# The lists of choices live in workshop_lib.choices (no imports: the CLI reads them without loading this module).
ENGINE_ENV = "WORKSHOP_ENGINE"
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
# Memory quantities need a unit: "128" would be 128 bytes, never what anyone meant.
_MEMORY_FIELDS = ("worker_memory", "shm_size", "hugepages_2mi")
_URL_FIELDS = ("frontend_url", "ucx_url", "libfabric_url")
_SIZES_FIELDS = ("nixl_sizes", "vram_sizes")
_MULTILINE_FIELDS = ("prompt",)  # free text; every other string field is one line (names, images, quantities)

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
# A node name is a DNS-1123 subdomain (ip-10-0-1-12.us-west-2.compute.internal).
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


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


def _default_engine() -> str:
    """``vllm`` unless WORKSHOP_ENGINE names another engine (checked with the other fields)."""
    return os.environ.get(ENGINE_ENV, "").strip().lower() or "vllm"


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
    # Lab/local engine: vllm (default) or mocker; WORKSHOP_ENGINE overrides the default (small machines: mocker).
    engine: str = field(default_factory=_default_engine)
    # Notebook-only parameters (the parameters cells of notebooks/build.py); None: the section's own default.
    teardown: bool = False
    prompt: str = "Explain in one sentence why prefill and decode run on separate GPUs."
    max_tokens: int = 32
    nixl_sizes: str | None = None
    nixl_iters: int | None = None
    netns: bool | None = None
    frontend_url: str | None = None
    concurrency: tuple[int, ...] | None = None
    requests: int | None = None
    ucx_url: str | None = None
    libfabric_url: str | None = None
    vram_sizes: str | None = None
    work_dir: str | None = None

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        # Every field by its type first (strings from papermill, --set, YAML or the environment are parsed here).
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), f.type))
        # Normalise case-insensitive enums first (frozen dataclass: use object.__setattr__).
        object.__setattr__(self, "target", str(self.target).lower())
        object.__setattr__(self, "framework", str(self.framework).lower().replace("-", "").replace("_", ""))
        object.__setattr__(self, "kv_backend", str(self.kv_backend).upper())
        object.__setattr__(self, "engine", str(self.engine).lower())
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
        if self.engine not in ENGINES:
            raise ConfigError(
                "engine", f"{self.engine!r} is not an engine the lab runs",
                f"use one of {', '.join(ENGINES)} (or set {ENGINE_ENV}=mocker on a small machine)",
            )
        for name in ("worker_memory", "shm_size", "hugepages_2mi", "worker_cpu"):
            parse_quantity(getattr(self, name), name)
        for name in _MEMORY_FIELDS:
            v = getattr(self, name)
            m = _QUANTITY.match(v.strip())
            if m and m["suffix"] in (None, "m"):
                raise ConfigError(name, f"{v!r} has no memory unit (it would mean {v} bytes)", f"write e.g. {v}Gi")
        for name in ("prefill_node", "decode_node"):
            v = getattr(self, name)
            if v is not None and (len(v) > 253 or not _DNS_SUBDOMAIN.match(v)):
                raise ConfigError(
                    name, f"{v!r} is not a Kubernetes node name",
                    "copy the name from `kubectl get nodes` (lower-case letters, digits, '-' and '.'), or leave it None",
                )
        for name in ("gpus_per_worker", "frontend_port", "frontend_system_port", "prefill_system_port",
                     "decode_system_port", "deploy_timeout_s", "isl", "osl", "max_tokens", "nixl_iters", "requests"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(name, f"{v!r} must be a positive integer", f"set {name} to e.g. {_example(name)}")
        if self.concurrency is not None and (not self.concurrency or any(c <= 0 for c in self.concurrency)):
            raise ConfigError("concurrency", f"{list(self.concurrency)!r} must be positive integers",
                              "write e.g. [1, 2, 4] or \"1,2,4\", or None for the default")
        for name in _URL_FIELDS:
            v = getattr(self, name)
            if v is not None:
                u = urlparse(v)
                if u.scheme not in ("http", "https") or not u.hostname:
                    raise ConfigError(name, f"{v!r} is not an http(s) URL", "write e.g. http://localhost:8000, or None")
        for name in _SIZES_FIELDS:
            v = getattr(self, name)
            if v is not None:
                from workshop_lib.parsing import parse_sizes

                try:
                    parse_sizes(v)
                except ConfigError as exc:
                    raise ConfigError(name, exc.problem, exc.fix) from None
        if not self.prompt.strip():
            raise ConfigError("prompt", "the prompt is empty", "write a question for the model")
        if self.work_dir is not None and not self.work_dir.strip():
            raise ConfigError("work_dir", "an empty folder name", "give a folder, or None for runs/notebooks")
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
        if self.price_per_node_hour < 0:
            raise ConfigError("price_per_node_hour", f"{self.price_per_node_hour!r} is not a price", "use USD per node-hour, e.g. 55.04")
        # libfabric's FI_LOG_LEVEL levels (fabric(7), "Logging Interface"): warn, trace, info, debug.
        if self.fi_log_level.lower() not in ("warn", "trace", "info", "debug"):
            raise ConfigError("fi_log_level", f"{self.fi_log_level!r} is not a libfabric log level",
                              "use info (the provider lines the diagnosis reads), warn, debug or trace")
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

        Every value is parsed and checked by its field's type (``"false"`` is False, ``"5"`` is 5). None means the
        field's default. Unknown names raise with the closest known name (``strict``) or are ignored.

        Raises:
            ConfigError: naming the parameter as given (``KV_BACKND: unknown parameter. Fix: did you mean KV_BACKEND?``).
        """
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            name = str(key).lower()
            if name not in known:
                if strict:
                    raise ConfigError(str(key), "unknown parameter", _closest(str(key), list(known)))
                continue
            if value is None and "None" not in str(known[name].type):
                continue  # None: the default (e.g. ISL = None in notebook 04)
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validate notebook parameters (strict) and return them typed, under the names given.

        ``workshop run`` calls this before papermill runs, so papermill receives ``TEARDOWN = False`` rather than
        the string ``"false"``, and a typo or a bad value stops the run before any notebook starts.

        >>> WorkshopConfig.check_params({"TEARDOWN": "false", "NIXL_ITERS": "5"})
        {'TEARDOWN': False, 'NIXL_ITERS': 5}
        """
        cfg = cls.from_params(params)
        return {k: (v if v is None else _plain(getattr(cfg, str(k).lower()))) for k, v in params.items()}

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> WorkshopConfig:
        """Build from a YAML mapping of parameters; errors name the file (and line for YAML syntax)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(str(p), f"cannot read the config file ({exc.strerror})", "check the path") from None
        except UnicodeDecodeError:
            raise ConfigError(str(p), "not a text file (not UTF-8)", "give a YAML file of parameters") from None
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


def _closest(given: str, known: list[str]) -> str:
    """The fix for an unknown parameter name: the closest known name, in the case it was given."""
    hits = difflib.get_close_matches(given.lower(), known, n=1, cutoff=0.6)
    upper = given.upper() == given
    if hits:
        return f"did you mean {hits[0].upper() if upper else hits[0]}?"
    names = [n.upper() if upper else n for n in known]
    return f"use one of {', '.join(names)}"


def _example(name: str) -> Any:
    for f in fields(WorkshopConfig):
        if f.name == name and f.default not in (None, dataclasses.MISSING):
            return f.default
    return 4


def _plain(value: Any) -> Any:
    """A config value as a papermill parameter (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    return f"a {type(value).__name__}"


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Parse ``value`` into the field's type (strings from papermill, ``--set``, YAML or the environment).

    Raises:
        ConfigError: naming the field, when the value is not of (or parseable into) the field's type.
    """
    ann = str(annotation).replace(" ", "")
    optional = "None" in ann
    base = ann.split("|")[0]
    if value is None:
        if optional:
            return None
        raise ConfigError(name, "no value", f"set {name} (default {_example(name)!r})")
    if isinstance(value, str) and optional and value.strip().lower() in ("", "none", "null"):
        return None
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(name, f"{value!r} is not true or false", f"set {name} to True or False")
    if base == "int":
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise ConfigError(name, f"{value!r} is not an integer", f"set {name} to a whole number") from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, f"{_kind(value)} ({value!r}) where an integer belongs", f"set {name} to a whole number")
        return value
    if base == "float":
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise ConfigError(name, f"{value!r} is not a number", f"set {name} to a number") from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            raise ConfigError(name, f"{_kind(value)} ({value!r}) where a number belongs", f"set {name} to a number")
        if not math.isfinite(number):
            raise ConfigError(name, f"{value!r} is not a finite number", f"set {name} to a number, e.g. {_example(name)}")
        return number
    if base.startswith("tuple[int"):
        items: Any = value
        if isinstance(value, str):
            items = [t for t in value.replace("[", "").replace("]", "").split(",")]
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [value]
        if not isinstance(items, (list, tuple)):
            raise ConfigError(name, f"{_kind(value)} ({value!r}) where a list of integers belongs",
                              "write e.g. [1, 2, 4] or \"1,2,4\"")
        return tuple(_coerce(name, item, "int") for item in items)
    # str fields: scalars only (a YAML mapping or list must not reach a container's args).
    if isinstance(value, (Mapping, list, tuple, set)) or isinstance(value, bool):
        raise ConfigError(name, f"{_kind(value)} ({value!r}) where a string belongs", f"set {name} to one string")
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(name, f"{_kind(value)} where a string belongs", f"set {name} to one string")
    text = value.strip()
    if ("\n" in text or "\r" in text) and name not in _MULTILINE_FIELDS:
        raise ConfigError(name, f"{value!r} spans several lines", f"set {name} to one line")
    return text
