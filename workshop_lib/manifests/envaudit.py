"""Environment variables that the pinned stack does not read: the one table, with where each fact was checked.

Many manifests copy these from the seed workshop or from older guides. Setting them changes nothing, so a "fix" built
on them only wastes an attendee's hour. Lint rule WL010 (:mod:`workshop_lib.manifests.lint`) flags them in a manifest,
and ``workshop diagnose --env`` flags them in a running worker's environment; both read this table.

Sources (pinned versions, see ``workshop versions``):

- libfabric 2.1.0-2.3.1, ``prov/efa/src/efa_env.c``: the EFA provider's variables are ``FI_EFA_ENABLE_SHM_TRANSFER``,
  ``FI_EFA_IFACE``, ``FI_EFA_USE_HUGE_PAGE``... There is no ``enable_shm`` and no ``dev_list``.
- NIXL 0.9.0 (tag 0.9.0, commit 2d475e4a): ``strings`` over every shared object of the nixl-cu12 0.9.0 wheel finds
  ``NIXL_LOG_LEVEL`` and ``NIXL_PLUGIN_DIR`` but no ``NIXL_LIBFABRIC_*``, no topology-check variable and no
  ``NIXL_BACKEND``; neither do its Python files or Dynamo 0.9.0's.
- vLLM 0.14.1 (``vllm/envs.py``, ``NixlConnector``): the backend list comes from ``--kv-transfer-config``
  ``kv_connector_extra_config.backends``; no ``VLLM_NIXL_KVCACHE_BACKEND`` is read.

Example:
    >>> [u.name for u in unread_env({"FI_EFA_ENABLE_SHM": "0", "FI_PROVIDER": "efa", "NIXL_BACKEND": "LIBFABRIC"})]
    ['FI_EFA_ENABLE_SHM', 'NIXL_BACKEND']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

LIBFABRIC_SRC = "libfabric 2.1.0-2.3.1 prov/efa/src/efa_env.c"
NIXL_SRC = "NIXL 0.9.0 (nixl-cu12 0.9.0 .so strings and Python files; Dynamo 0.9.0 Python files)"
VLLM_SRC = "vLLM 0.14.1 vllm/envs.py and NixlConnector (backends come from --kv-transfer-config)"


@dataclass(frozen=True)
class UnreadVar:
    """An env var nothing in the pinned stack reads: what it was meant to do, what does it, and where that was checked.

    ``frameworks`` limits the entry to some engines (empty = every engine). ``value`` is filled by :func:`unread_env`.
    """

    name: str
    intent: str
    instead: str
    source: str
    frameworks: tuple[str, ...] = ()
    value: str | None = None

    def message(self) -> str:
        """One line: ``NAME is not read by ...: a no-op (meant to ...)``."""
        return f"{self.name} is not read by the pinned stack ({self.source}): a no-op (meant to {self.intent})"

    def fix(self) -> str:
        return f"remove {self.name}; {self.instead}"


_VLLM_BACKENDS = ("pass --connector none --kv-transfer-config with "
                  "kv_connector_extra_config.backends [\"LIBFABRIC\"] (or [\"UCX\"])")

UNREAD: dict[str, UnreadVar] = {u.name: u for u in (
    UnreadVar("FI_EFA_ENABLE_SHM", "switch off the EFA provider's shared-memory path",
              "FI_EFA_ENABLE_SHM_TRANSFER=0 is the libfabric variable that does this", LIBFABRIC_SRC),
    UnreadVar("FI_EFA_DEV_LIST", "limit which EFA devices are used",
              "limit devices with FI_EFA_IFACE=<rdmap...> or with the pod's vpc.amazonaws.com/efa request", LIBFABRIC_SRC),
    UnreadVar("NIXL_SKIP_TOPOLOGY_CHECK", "skip NIXL's GPU/EFA topology check",
              "NIXL 0.9.0 has no such switch; its topology code always runs", NIXL_SRC),
    UnreadVar("NIXL_LIBFABRIC_MAX_RAILS", "cap the number of LIBFABRIC rails",
              "NIXL 0.9.0 opens one rail per visible EFA device: limit devices with FI_EFA_IFACE or the EFA request",
              NIXL_SRC),
    UnreadVar("NIXL_BACKEND", "choose the NIXL backend",
              "vLLM: " + _VLLM_BACKENDS + "; TRT-LLM: TRTLLM_NIXL_KVCACHE_BACKEND=LIBFABRIC|UCX", NIXL_SRC),
    UnreadVar("VLLM_NIXL_KVCACHE_BACKEND", "choose vLLM's NIXL backend", _VLLM_BACKENDS, VLLM_SRC),
    UnreadVar("TRTLLM_NIXL_KVCACHE_BACKEND", "choose the NIXL backend (read by TRT-LLM only)",
              "vLLM: " + _VLLM_BACKENDS, VLLM_SRC, frameworks=("vllm",)),
)}


def unread_env(env: Mapping[str, str], framework: str | None = None) -> list[UnreadVar]:
    """The variables of ``env`` that the pinned stack does not read, in ``env``'s order, each with its value.

    ``framework`` (``vllm`` or ``trtllm``) adds the engine-specific entries (``TRTLLM_NIXL_KVCACHE_BACKEND`` on vLLM);
    None checks only the entries that hold for every engine.

    >>> [u.name for u in unread_env({"TRTLLM_NIXL_KVCACHE_BACKEND": "UCX"}, "vllm")]
    ['TRTLLM_NIXL_KVCACHE_BACKEND']
    >>> unread_env({"TRTLLM_NIXL_KVCACHE_BACKEND": "UCX"}, "trtllm")
    []
    """
    out = []
    for name, value in env.items():
        u = UNREAD.get(name)
        if u is None or (u.frameworks and framework not in u.frameworks):
            continue
        out.append(UnreadVar(u.name, u.intent, u.instead, u.source, u.frameworks, None if value is None else str(value)))
    return out


def unread_names(framework: str | None = None) -> Iterable[str]:
    """Every name :func:`unread_env` can return for ``framework``."""
    return [n for n, u in UNREAD.items() if not u.frameworks or framework in u.frameworks]
