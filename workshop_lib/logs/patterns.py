"""Line formats and event signatures of NIXL, libfabric, UCX, vLLM, TRT-LLM, SGLang, Dynamo, nixlbench and kubectl.

Everything here is data: compiled regular expressions and small tables. :mod:`workshop_lib.logs.parser` applies them.
Wording comes from FACTS.md ("What the logs say"), LOCAL-LAB.md and the public excerpts in ``shared/fixtures``.

A rule only runs on a line that contains its ``key`` (a plain substring). :data:`SCAN_KEYS` covers all keys, so a
line without any of them can produce no event: the fast file scanner in :mod:`workshop_lib.logs.scan` relies on that.

Example:
    >>> "Discovered" in SCAN_KEYS and "libfabric:" in SCAN_KEYS
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# --- prefixes -------------------------------------------------------------------------------------------------
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
KUBECTL_PREFIX_RE = re.compile(r"^\[pod/(?P<pod>[^/\]\s]+)/(?P<container>[^\]\s]+)\] ?")
# stern-style "<pod> <container> " where the pod name ends in a ReplicaSet hash or a StatefulSet ordinal.
STERN_PREFIX_RE = re.compile(
    r"^(?P<pod>[a-z0-9](?:[-a-z0-9.]*)-(?:[a-z0-9]{5}|\d+)) (?P<container>[a-z][-a-z0-9]{0,62}) (?=\S)"
)
PROC_PREFIX_RE = re.compile(r"^(?:\((?:\w+ )?pid=\d+\) )+")

# --- ids ------------------------------------------------------------------------------------------------------
# An id (a 0x address, a uuid) says which object, never what happened: rules read every id as zeros (``mask_ids``), so
# an id never decides which rule matches or where. What a rule captures is still read from the line as written. The
# fast scan's shapes (``native/shapescan.c``) mask the same ids the same way; ``logs/shapes.py`` checks that no
# prefilter key can overlap one. An id: ``0x`` and lowercase hex digits, or a canonical uuid (8-4-4-4-12 lowercase
# hex), with no letter, digit or ``_`` right before or after it; only in a line that is plain ASCII.
ID_RE = re.compile(r"(?<![0-9A-Za-z_])(?:0x[0-9a-f]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
                   r"(?![0-9A-Za-z_])")
_UUID0 = "00000000-0000-0000-0000-000000000000"
_UUID_MID = re.compile(r"-(?=[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)")  # a uuid's first dash (overlaps found too)


def mask_ids(text: str) -> str:
    """``text`` with every hex digit of each id (:data:`ID_RE`) as ``0`` (same length; ``text`` itself when it holds
    no id or is not plain ASCII). Same as ``ID_RE.sub`` with each match's hex digits zeroed, looking only where an
    id can start (a ``0x``, 8 characters before a uuid's first dash): a few times faster on long lines.

    Example:
        >>> mask_ids("mr=0x7ff5d87f for agent 'def7d2f1-d482-4cd2-b6de-f238da5a9c70', 0x1fg, cafe0x12")
        "mr=0x00000000 for agent '00000000-0000-0000-0000-000000000000', 0x1fg, cafe0x12"
    """
    if not text.isascii():
        return text
    starts = []
    i = text.find("0x")
    while i >= 0:
        starts.append(i)
        i = text.find("0x", i + 2)
    if "-" in text:
        starts += [m.start() - 8 for m in _UUID_MID.finditer(text) if m.start() >= 8]
        starts.sort()
    if not starts:
        return text
    out, done = [], 0
    for a in starts:
        if a < done:
            continue
        m = ID_RE.match(text, a)
        if m:
            b = m.end()
            out += [text[done:a], _UUID0 if b - a == 36 and text[a + 1] != "x" else "0x" + "0" * (b - a - 2)]
            done = b
    return "".join(out) + text[done:] if out else text


# --- line formats (applied to the message after prefixes) -----------------------------------------------------
LEVELS = {
    "I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL", "D": "DEBUG",
    "INFO": "INFO", "WARN": "WARN", "WARNING": "WARN", "ERROR": "ERROR", "FATAL": "FATAL", "CRITICAL": "FATAL",
    "DEBUG": "DEBUG", "TRACE": "TRACE", "DIAG": "DEBUG", "REQ": "DEBUG", "DATA": "DEBUG", "PRINT": "INFO",
    "INFO_": "INFO", "VERBOSE": "DEBUG", "NOTICE": "INFO",
}


@dataclass(frozen=True)
class LineFormat:
    """A known log line layout: its regex (named groups ``ts``, ``lvl``, ``msg``) and its component."""

    name: str
    regex: re.Pattern[str]
    component: str


FORMATS: tuple[LineFormat, ...] = (
    # NIXL C++ (abseil): I1207 19:34:40.132122    1302 nixl_agent.cpp:122] msg
    LineFormat("abseil", re.compile(
        r"^(?P<lvl>[IWEF])(?P<ts>\d{4} \d\d:\d\d:\d\d\.\d+)\s+\d+ (?P<loc>[\w./-]+:\d+)\] ?(?P<msg>.*)"), "nixl"),
    # NIXL Python logger: 2025-12-07 19:34:32 NIXL INFO    logging.py:82 msg
    LineFormat("nixl-py", re.compile(
        r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[.,]\d+)?) NIXL (?P<lvl>[A-Z]+)\s+(?:(?P<loc>\S+:\d+) )?(?P<msg>.*)"),
        "nixl"),
    # libfabric FI_LOG_LEVEL: libfabric:<pid>:<ts>::<prov>:<subsys>:<func>():<line><info> msg (old: no ts)
    LineFormat("libfabric", re.compile(
        r"^libfabric:\d+:(?:(?P<ts>\d+)::)?(?P<prov>[\w;-]+):(?P<sub>\w+):(?P<loc>\w+\(\):\d+)<(?P<lvl>\w+)> ?(?P<msg>.*)"),
        "libfabric"),
    # UCX: [1746690477.974497] [llm206:611  :0]     ucp_context.c:1268 UCX  WARN  msg
    LineFormat("ucx", re.compile(
        r"^\[(?P<ts>\d+\.\d+)\] \[[^\]]*\]\s+(?:(?P<loc>\S+:\d+)\s+UCX\s+(?P<lvl>[A-Z]+)\s+)?(?P<msg>.*)"), "ucx"),
    # vLLM: INFO 11-25 02:39:44 [nixl_connector.py:800] msg
    LineFormat("vllm", re.compile(
        r"^(?P<lvl>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<ts>\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) \[(?P<loc>[^\]]+)\] ?(?P<msg>.*)"),
        "vllm"),
    # TRT-LLM: [TensorRT-LLM][INFO] msg, optionally after a bracketed timestamp
    LineFormat("trtllm", re.compile(
        r"^(?:\[(?P<ts>[^\]]*\d[^\]]*)\] )?\[TensorRT-LLM\](?:\[(?P<lvl>[A-Z]+)\])? ?(?P<msg>.*)"), "trtllm"),
    # Rust tracing (Dynamo frontend, workers): 2026-11-27T02:28:17.776046Z  INFO dynamo_llm::x: msg
    LineFormat("tracing", re.compile(
        r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)\s+(?P<lvl>TRACE|DEBUG|INFO|WARN|ERROR)\s+"
        r"(?P<loc>\S+?): (?P<msg>.*)"), "dynamo"),
    # SGLang: [2026-07-21 08:06:26 TP0 EP0] msg
    LineFormat("sglang", re.compile(
        r"^\[(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?: [^\]]*)?\] (?P<msg>.*)"), "sglang"),
    # Python logging default-ish: 2025-05-08 00:47:57,123 - name - ERROR - msg  /  2025-05-08 00:47:57 ERROR msg
    LineFormat("python", re.compile(
        r"^(?P<ts>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?)(?: - [\w.]+ -)? (?:\[)?(?P<lvl>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)"
        r"(?:\])?:?\s+(?:- )?(?P<msg>.*)"), "python"),
    # kubectl describe: "  Reason:       OOMKilled", "Last State:     Terminated"
    LineFormat("kubectl", re.compile(
        r"^\s*(?P<msg>(?:Last State|State|Reason|Exit Code|Started|Finished|Ready|Restart Count|Message|Signal):\s+.*)"),
        "kubernetes"),
    # nixlbench banner / progress lines
    LineFormat("nixlbench", re.compile(
        r"^(?P<msg>(?:[A-Z][\w .]*\(--\w+=.*|NIXLBench Configuration|Init nixl worker.*|ETCD (?:Runtime|Endpoint).*"
        r"|Connecting to ETCD.*|Waiting for all processes.*|All processes are ready.*|WARNING: Adjusting .*|\*{20,}|-{20,}"
        r"|Block Size \(B\).*|\d+\s+\d+\s+\d+\.\d+(?:\s+\d+(?:\.\d+)?){3,}\s*))$"), "nixlbench"),
    # Python exception line: RuntimeError: ...
    LineFormat("exception", re.compile(r"^(?P<msg>(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Exit|Interrupt): .*)"), "python"),
)


# --- event rules ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """An event signature: runs ``regex`` on the message when ``key`` is in the line.

    ``sets`` holds constant column values (e.g. ``{"backend": "LIBFABRIC"}``); named groups of the regex whose names
    are columns (backend, provider, devices, rails, peer, fi_addr, transport, error) fill those columns.

    A number the signature depends on (``returned -61``, ``Exit Code: 137``) is never a literal in the regex: the
    regex captures it (``(?P<errno>\\d+)``) and ``when`` holds the condition, ``(group, inside, values)``: the match
    counts only when the group's text is (``inside``) or is not one of ``values`` (a group that did not take part
    passes). Every regex then tests digits only as a class, which is what lets the fast scan share one
    classification between lines that differ in other digits (:mod:`workshop_lib.logs.shapes`).
    """

    event: str
    key: str
    regex: re.Pattern[str]
    component: str | None = None
    sets: dict[str, object] = field(default_factory=dict)
    code: str | None = None
    level: str | None = None
    when: tuple[tuple[str, bool, frozenset[str]], ...] = ()


Condition = tuple[str, bool, frozenset[str]]


def _is(group: str, *values: str) -> Condition:
    return (group, True, frozenset(values))


def _is_not(group: str, *values: str) -> Condition:
    return (group, False, frozenset(values))


def _r(event: str, key: str, pattern: str, component: str | None = None, code: str | None = None,
       level: str | None = None, when: tuple[Condition, ...] = (), **sets: object) -> Rule:
    return Rule(event, key, re.compile(pattern), component, dict(sets), code, level, when)


def first_match(regex: re.Pattern[str], when: tuple[Condition, ...], msg: str,
                raw: str | None = None) -> re.Match[str] | None:
    """The first match of ``regex`` in ``msg`` (leftmost, then the next one after it) that meets ``when``.

    ``raw``: the line as written when ``msg`` is its :func:`mask_ids` (same length): ``when`` reads the number there.

    Example:
        >>> rx = re.compile(r"returned -(?P<errno>\\d+)")
        >>> first_match(rx, (_is_not("errno", "61"),), "returned -61, then returned -12")["errno"]
        '12'
        >>> first_match(rx, (_is("errno", "61"),), "returned -12") is None
        True
    """
    if not when:
        return regex.search(msg)
    for m in regex.finditer(msg):
        for group, inside, values in when:
            val = m.group(group) if raw is None or m.start(group) < 0 else raw[m.start(group):m.end(group)]
            if val is not None and (val in values) != inside:
                break
        else:
            return m
    return None


RULES: tuple[Rule, ...] = (
    # NIXL core and LIBFABRIC backend (0.9.0 and 1.x wording)
    _r("nixl.version", "NIXL version", r"NIXL version:? v?(?P<detail>\d[\w.+-]*)", "nixl"),
    _r("nixl.plugin_dir", "Loading plugins from", r"Loading plugins from:? (?P<detail>\S+)", "nixl"),
    _r("nixl.plugin_loaded", "Discovered", r"Discovered (?P<detail>and loaded backend |and loaded |backend )?plugin: "
       r"(?P<backend>\w+)", "nixl"),
    _r("nixl.backend_instantiated", "Backend ", r"Backend (?P<backend>[A-Z][A-Z0-9_]*) was instantiated", "nixl"),
    _r("nixl.backend_selected", "Selected backend", r"Selected backend:? (?P<backend>\w+)", "nixl"),
    _r("nixl.backend_selected", "Using backend", r"Using backend(?:\(s\))?: \[?'?(?P<backend>[A-Z][A-Z0-9_]*)", "nixl"),
    _r("nixl.agent_initialized", "NIXL agent", r"Initialized NIXL agent:? (?P<peer>\S+)", "nixl"),
    _r("nixl.rail_manager", "Creating rail manager", r"Creating rail manager", "nixl", backend="LIBFABRIC"),
    _r("nixl.efa_devices", "Discovered", r"Discovered (?P<devices>\d+) EFA devices?", "nixl",
       backend="LIBFABRIC", provider="efa"),
    _r("nixl.socket_devices", "Discovered", r"Discovered (?P<devices>\d+) (?:socket|tcp|TCP) devices?", "nixl",
       backend="LIBFABRIC", provider="sockets", transport="tcp"),
    _r("nixl.sockets_topology", "Using simplified topology", r"Using simplified topology for (?P<provider>sockets)",
       "nixl", backend="LIBFABRIC", transport="tcp"),
    _r("nixl.no_devices", "No network devices", r"No network devices found", "nixl", backend="LIBFABRIC"),
    _r("nixl.fabric_name", "fabric_attr->", r"fabric_attr->(?:prov_)?name[:=]?\s*(?P<name>\S+)", "nixl",
       backend="LIBFABRIC"),
    _r("nixl.rail_hmem", "Using provider with FI_HMEM", r"Using provider with FI_HMEM support for rail (?P<detail>\d+)",
       "nixl",
       backend="LIBFABRIC"),
    _r("nixl.rail_created", "Created rail", r"Created rail \d+ \(device=(?P<dev>[^,)]+), provider=(?P<provider>[\w-]+)",
       "nixl", backend="LIBFABRIC"),
    _r("nixl.connection_created", "Successfully created connection",
       r"Successfully created connection for agent:? (?P<peer>\S+) on (?P<rails>\d+) data rails", "nixl",
       backend="LIBFABRIC"),
    _r("nixl.self_connection", "Created self-connection",
       r"Created self-connection for agent:? (?P<peer>\S+) on (?P<rails>\d+) data rails", "nixl", backend="LIBFABRIC"),
    _r("nixl.rails_serialized", "Serialized", r"Serialized (?P<rails>\d+) data rail endpoints", "nixl",
       backend="LIBFABRIC"),
    _r("nixl.rail_count_mismatch", "Local ", r"Local (?P<rails>\d+) data rail endpoints, remote (?P<remote>\d+)", "nixl",
       backend="LIBFABRIC", level="WARN"),
    _r("nixl.connecting", "Connecting to agent", r"Connecting to agent:? (?P<peer>[^,\s]+)", "nixl"),
    _r("nixl.handshake_stored", "Handshake stored", r"Handshake stored: peer='?(?P<peer>[^' ]+)", "nixl",
       backend="LIBFABRIC"),
    _r("nixl.connection_state", "Connection state", r"Connection state for agent (?P<peer>\S+) is now (?P<state>\w+)",
       "nixl"),
    _r("nixl.transfer_verified", "Transfer verified", r"Transfer verified", "nixl"),
    # libfabric / EFA provider
    # efa names its fabric "efa"; tcp and sockets name theirs after the IP subnet (e.g. 10.200.0.0/24): no provider
    _r("libfabric.opened_fabric", "Opened fabric", r"Opened fabric:? (?:(?P<provider>[A-Za-z][\w-]*)\b(?!\.)|\S+)",
       "libfabric"),
    _r("libfabric.provider_rejected", "returned -",
       r"fi_getinfo: provider (?P<provider>[\w;-]+) returned -(?P<errno>\d\d)", "libfabric", when=(_is("errno", "61"),)),
    _r("libfabric.efa_caps_unsupported", "Unsupported capabilities", r"^Unsupported capabilities", "libfabric"),
    _r("efa.handshake", "HANDSHAKE received",
       r"HANDSHAKE received from peer with explicit fi_addr (?P<fi_addr>\d+)", "libfabric", provider="efa"),
    _r("efa.peer_host", "Received peer host", r"Received peer host id:? (?P<peer>\S+)", "libfabric", provider="efa"),
    _r("libfabric.provider", "provider ", r"^provider:?\s+(?P<provider>efa|tcp|sockets|shm|verbs|udp|psm\d|opx)\b",
       "libfabric", when=(_is("provider", "efa", "tcp", "sockets", "shm", "verbs", "udp", "psm3", "opx"),)),
    # UCX
    _r("ucx.transport", "cfg#", r"(?:(?P<scope>intra|inter)-node|self) cfg#\d+", "ucx"),
    # a UCX_PROTO_INFO table row for the largest messages (``| 8185..inf | zero-copy | cma/memory |``): the
    # transport that carries the operation named by the table's header line
    _r("ucx.transport", "inf |", r"\|\s*\d*\.\.inf\s*\|", "ucx"),
    # vLLM NixlConnector
    _r("vllm.nixl_worker", "NIXL worker", r"Initializing NIXL worker (?P<peer>\S+)", "vllm"),
    _r("vllm.version", "API server version", r"vLLM API server version:? v?(?P<detail>\d[\w.+-]*)", "vllm"),
    _r("vllm.version", "LLM engine (v", r"Initializing a V\d LLM engine \(v(?P<detail>\d[\w.+-]*)\)", "vllm"),
    _r("vllm.nixl_available", "NIXL is available", r"^NIXL is available", "vllm"),
    _r("vllm.nixl_compat", "NIXL compatibility check passed", r"NIXL compatibility check passed", "vllm"),
    _r("vllm.metric", "vllm:nixl_", r"^(?P<detail>vllm:nixl_\w+?)(?:_total|_count|_sum|_bucket)?(?:\{[^}]*\})? "
       r"(?P<value>[-+\d.eE]+|NaN)", "vllm"),
    _r("ucx.version", "Version ", r"^Version (?P<detail>\d[\w.]*)(?: \(loaded from (?P<path>\S+)\))?", "ucx"),
    _r("trtllm.version", "TensorRT-LLM version", r"TensorRT-LLM version:? (?P<detail>\d[\w.+-]*)", "trtllm"),
    _r("libfabric.version", ", path:", r"Using [\w;-]+ provider (?P<detail>\d+\.\d+(?:\.\d+)?\w*), path:\s*(?P<path>\S+)",
       "libfabric"),
    _r("libfabric.version", "libfabric:", r"^(?:fi_info: [\d.]+ )?libfabric:? (?P<detail>\d+\.\d+\.\d+\w*)$",
       "libfabric"),
    _r("vllm.connector", "connector with name", r"Creating v(?P<api>\d) connector with name: (?P<name>\w+)", "vllm",
       when=(_is("api", "1"),)),
    _r("vllm.remote_blocks", "dst engine", r"Created (?P<n>\d+) blocks for dst engine (?P<peer>\S+)", "vllm"),
    _r("vllm.waiting_remote_kvs", "WAITING_FOR_REMOTE_KVS", r"WAITING_FOR_REMOTE_KVS", "vllm"),
    _r("vllm.prefix_cache", "External prefix cache", r"External prefix cache hit rate", "vllm"),
    # TRT-LLM
    _r("trtllm.backend", "NixlTransferAgent", r"NixlTransferAgent using NIXL backend:? (?P<backend>\w+)", "trtllm"),
    _r("trtllm.cache_transceiver", "CacheTransceiverConfig", r"CacheTransceiverConfig\(backend='?(?P<kv>\w+)", "trtllm"),
    # Dynamo
    _r("dynamo.prefill_model_detected", "Prefill model detected", r"Prefill model detected", "dynamo"),
    _r("dynamo.prefill_router_active", "Prefill router activated",
       r"Prefill router activated successfully(?: router_mode=(?P<mode>\w+))?", "dynamo"),
    _r("dynamo.bootstrap", "ootstrap",
       r"Bootstrap server started on port \d+|Bootstrap: decode connecting to (?P<peer>\S+)|decode received ACK"
       r"|Built bootstrap_info", "dynamo"),
    # nixlbench
    _r("nixlbench.backend", "(--backend", r"^Backend \(--backend=[^)]*\)\s*:\s*(?P<backend>\w+)", "nixlbench"),
    _r("nixlbench.worker", "Init nixl worker", r"Init nixl worker, .*type (?P<role>\w+)", "nixlbench"),
    # failure signatures
    _r("efa.internal_abort", "internal error",
       r"(?i)EFA provider has encountered an internal error|EFA internal error:? \((?P<error>-?\d+)\)", "libfabric",
       code="EFA_INTERNAL_ABORT", level="FATAL", provider="efa"),
    _r("efa.internal_abort", "will now abort", r"Your application will now abort", "libfabric",
       code="EFA_INTERNAL_ABORT", level="FATAL"),
    _r("nixl.rail_no_hmem", "without FI_HMEM", r"Using provider without FI_HMEM support for rail (?P<detail>\d+)", "nixl",
       code="NO_GPUDIRECT_RAIL", level="WARN", backend="LIBFABRIC"),
    _r("nixl.rail_no_hmem", "does not support FI_HMEM",
       r"VRAM memory requested but provider does not support FI_HMEM", "nixl", code="NO_GPUDIRECT_RAIL",
       level="WARN", backend="LIBFABRIC"),
    _r("nixl.rail_no_hmem", "No provider found with FI_HMEM", r"No provider found with FI_HMEM capability for rail "
       r"(?P<detail>\d+)", "nixl", code="NO_GPUDIRECT_RAIL", level="WARN", backend="LIBFABRIC"),
    _r("nixl.remote_disconnect", "NIXL_ERR_REMOTE_DISCONNECT", r"(?P<error>NIXL_ERR_REMOTE_DISCONNECT)", "nixl",
       code="NIXL_REMOTE_DISCONNECT", level="ERROR"),
    _r("nixl.register_failed", "registration failed", r"registerMem: registration failed", "nixl",
       code="NIXL_REGISTER_FAILED", level="ERROR"),
    _r("vllm.nixl_handshake_failed", "Handshake with", r"Handshake with (?P<peer>\S+) failed", "vllm",
       code="NIXL_HANDSHAKE_FAILED", level="ERROR"),
    _r("vllm.kv_transfer_failed", "NIXL transfer failure", r"NIXL transfer failure:? (?P<error>[^|]*)", "vllm",
       code="KV_TRANSFER_FAILED", level="ERROR"),
    _r("engine.dead", "ngine", r"EngineCore failed to start|EngineDeadError|Engine core proc \S+ died unexpectedly"
       r"|EngineCore encountered a fatal error|Engine core initialization failed", "vllm", code="ENGINE_DEAD",
       level="FATAL"),
    _r("engine.dead", "xecutor", r"Failed to initialize executor|Executor worker returned error", "trtllm",
       code="ENGINE_DEAD", level="FATAL"),
    _r("engine.dead", "Scheduler hit an exception", r"Scheduler hit an exception", "sglang", code="ENGINE_DEAD",
       level="FATAL"),
    _r("process.aborted", "core dumped", r"(?:Aborted|Segmentation fault|Bus error) \(core dumped\)", None,
       code="PROCESS_ABORTED", level="FATAL"),
    _r("process.aborted", "Fatal Python error", r"^Fatal Python error", "python", code="PROCESS_ABORTED",
       level="FATAL"),
    _r("k8s.crashloop", "CrashLoopBackOff", r"CrashLoopBackOff", "kubernetes", code="K8S_CRASHLOOP", level="ERROR"),
    _r("k8s.crashloop", "Back-off restarting", r"Back-off restarting failed container", "kubernetes",
       code="K8S_CRASHLOOP", level="ERROR"),
    _r("k8s.oomkilled", "OOMKilled", r"OOMKilled", "kubernetes", code="OOM_KILLED", level="ERROR"),
    _r("k8s.exit_137", "Exit Code", r"Exit Code:\s+(?P<exit>\d+)\b", "kubernetes", code="OOM_KILLED", level="ERROR",
       when=(_is("exit", "137"),)),
    _r("k8s.exit_137", "exited with code", r"exited with code (?P<exit>\d+)\b", "kubernetes", code="OOM_KILLED",
       level="ERROR", when=(_is("exit", "137"),)),
    _r("nixl.error", "NIXL_ERR_", r"(?P<error>NIXL_ERR_[A-Z_]+)", "nixl", code="NIXL_ERR", level="ERROR"),
    _r("nixl.backend_create_failed", "ailed",
       r"(?i)(?:fail(?:ed|ure)? (?:to |in |while )?(?:load|creat|instantiat|initiali[sz])\w*.{0,40}\b(?:backend|plugin)"
       r"|\b(?:backend|plugin)\b.{0,60}\b(?:fail(?:ed|ure)|could not be (?:created|loaded)))", "nixl",
       code="NIXL_BACKEND_CREATE_FAILED", level="ERROR"),
    _r("nixl.backend_create_failed", "cannot open shared object",
       r"libplugin_(?P<backend>\w+)\.so.*cannot open shared object file", "nixl",
       code="NIXL_BACKEND_CREATE_FAILED", level="ERROR"),
    _r("nixl.remote_metadata_missing", "remote agent",
       r"(?i)metadata for remote agent '?(?P<peer>[^'\s]+)'? (?:was )?not found|remote agent '?(?P<peer2>[^'\s]+)'? "
       r"(?:metadata )?not (?:found|loaded)", "nixl", code="NIXL_REMOTE_METADATA_MISSING", level="ERROR"),
    _r("nixl.rail_deserialize_failed", "eserializ",
       r"(?i)(?:fail\w* to deserializ\w*|deserializ\w*\b.{0,80}\b(?:failed|error)).*", "nixl",
       code="RAIL_DESERIALIZE_FAILED",
       level="ERROR", backend="LIBFABRIC"),
    _r("nixl.fi_eagain", "EAGAIN", r"fi_\w+ still retrying EAGAIN(?: on rail (?P<rail>\d+))?", "nixl",
       code="EFA_EAGAIN_SAME_NODE", level="ERROR", backend="LIBFABRIC"),
    _r("efa.provider_abort", "EFA",
       r"(?i)(?:couldn'?t|could not|cannot|failed to|unable to) (?:get|open|find|use|initiali[sz]e) (?:the )?EFA"
       r"|prov_name, \"efa\"\) == (?P<cmp>\d)", "libfabric", code="EFA_PROVIDER_ABORT", level="FATAL",
       when=(_is("cmp", "0"),)),
    _r("ucx.unreachable", "nreachable", r"(?i)destination is unreachable|unreachable destination|no route to host",
       "ucx", code="UCX_UNREACHABLE", level="ERROR"),
    _r("ucx.cuda_transports_missing", "UCX CUDA support was not found", r"UCX CUDA support was not found", "ucx",
       code="UCX_CUDA_TRANSPORTS_MISSING", level="ERROR"),
    _r("ucx.cuda_transports_missing", "detected as host", r"VRAM memory is detected as host", "ucx",
       code="UCX_CUDA_TRANSPORTS_MISSING", level="ERROR"),
    _r("ucx.cuda_transports_missing", "not available",
       r"transports? '?cuda_(?:ipc|copy)'?.*(?:is|are) not available", "ucx", code="UCX_CUDA_TRANSPORTS_MISSING",
       level="ERROR"),
    _r("trtllm.transfer_agent_assert", "NIXL_SUCCESS", r"Assertion failed: status == NIXL_SUCCESS", "trtllm",
       code="TRTLLM_TRANSFER_AGENT_ASSERT", level="ERROR"),
    _r("trtllm.location", "transferAgent.cpp", r"transferAgent\.cpp:\d+", "trtllm"),
    _r("trtllm.backend_fallback", "Unsupported NIXL backend",
       r"Unsupported NIXL backend:? (?P<error>\S+?),? fallback to (?P<backend>UCX)", "trtllm",
       code="TRTLLM_BACKEND_FALLBACK", level="ERROR"),
    _r("dynamo.connector_conflict", "Cannot specify both",
       r"Cannot specify both --kv-transfer-config and --connector", "dynamo", code="DYNAMO_CONNECTOR_CONFLICT",
       level="ERROR"),
    _r("dynamo.etcd_unreachable", "Could not connect to etcd", r"Could not connect to etcd", "dynamo",
       code="DYNAMO_ETCD_UNREACHABLE", level="ERROR"),
    # any libfabric call that failed or returned a negative code (after the named ones; fi_getinfo's -61 is normal)
    _r("libfabric.call_failed", "failed", r"(?<!harmful: )\b(?P<call>fi_[a-z_]+)\b(?:\(\))?[^|]{0,80}?\bfailed\b",
       "libfabric", code="FI_CALL_FAILED", level="ERROR"),
    _r("libfabric.call_failed", "ret=-", r"\b(?P<detail>fi_[a-z_]+)\b(?:\(\))?[^|]{0,80}?\bret=(?P<error>-\d+)",
       "libfabric", code="FI_CALL_FAILED", level="ERROR"),
    _r("libfabric.call_failed", "returned -", r"\b(?P<detail>fi_[a-z_]+)\b(?:\(\))?[^|]{0,80}?\breturned "
       r"(?P<error>-(?P<errno>\d+))", "libfabric", code="FI_CALL_FAILED", level="ERROR", when=(_is_not("errno", "61"),)),
    # fabtests (fi_pingpong, fi_rdm_*): "[error] util/pingpong.c:373 : failed to connect: ..."
    _r("fabtests.error", "[error]", r"^\[error\] ", "libfabric", level="ERROR"),
    # a Python traceback with no level of its own: an error of the component that printed it
    _r("python.traceback", "Traceback", r"^Traceback \(most recent call last\)", "python", level="ERROR"),
)

# Lines that look alarming but are normal (never errors): a rule each (:func:`is_benign`).
BENIGN_RE = re.compile(
    r"(?i:hmem\w* (?:interface|iface)s?.{0,40}not supported)"
    r"|OFI_MRAIL_ADDR_STRC env variable not set|Unsupported endpoint type|unused env(?:ironment)? variable|not harmful: "
)
# fi_getinfo's -61 (ENODATA, "No data available") only means that provider does not fit the request.
BENIGN_ENODATA_RE = re.compile(r"fi_getinfo: provider [\w;-]+ returned -(?P<errno>\d\d)")
BENIGN_RULES: tuple[tuple[re.Pattern[str], tuple[Condition, ...]], ...] = (
    (BENIGN_RE, ()), (BENIGN_ENODATA_RE, (_is("errno", "61"),)))


def is_benign(msg: str, raw: str | None = None) -> bool:
    """True for a line that looks alarming but is normal.

    Example:
        >>> is_benign("fi_getinfo: provider tcp returned -61 (No data available)"), is_benign("... returned -12")
        (True, False)
    """
    return any(first_match(rx, when, msg, raw) for rx, when in BENIGN_RULES)


# Generic errors need the level token in the line (so PREFILTER sees it).
ERROR_LEVELS = frozenset({"ERROR", "FATAL"})

# UCX "transport/device" tokens (e.g. tcp/lo, cma/memory, rc_mlx5/mlx5_0:1, cuda_ipc/cuda)
UCX_TL_RE = re.compile(r"\b(?P<tl>[a-z][a-z0-9_]*)/(?P<dev>[\w.:-]+)")
UCX_RDMA_TLS = frozenset({"rc", "rc_verbs", "rc_mlx5", "dc", "dc_mlx5", "ud", "ud_verbs", "ud_mlx5", "srd", "efa",
                          "gga", "ib"})
UCX_GPU_TLS = frozenset({"cuda_ipc", "cuda_copy", "gdr_copy", "rocm_ipc", "rocm_copy"})
UCX_SHM_TLS = frozenset({"cma", "knem", "xpmem", "sysv", "posix", "self", "mm"})
RDMA_PROVIDERS = frozenset({"efa", "verbs", "psm3", "opx", "cxi"})
TCP_PROVIDERS = frozenset({"tcp", "sockets", "udp"})
LAYERED_PROVIDERS = frozenset({"core", "util", "ofi_rxm", "ofi_rxd", "ofi_mrail", "ofi_hook_noop", "hook", "lnx",
                               "mrail", "rxm", "rxd", "shm", "sm2", "linkx"})

RULES_BY_PRIORITY: tuple[Rule, ...] = tuple(r for r in RULES if r.code) + tuple(r for r in RULES if not r.code)
RULE_KEYS: tuple[str, ...] = tuple(sorted({r.key for r in RULES}))
# Generic errors need one of these tokens in the line (abseil E/F lines start with E/F + month 01-12).
ERROR_KEYS: tuple[str, ...] = ("ERROR", "FATAL", "CRITICAL", "Error", "Exception", "E0", "E1", "F0", "F1")
# Captured groups whose value the accumulator reads (through Event.devices/rails/provider/backend/detail): where one
# holds a digit, lines that differ in it can classify differently (the fast scan keys on them; see logs/shapes.py).
# ``error``, ``peer``, ``value`` and ``path`` are not read from the event (values and paths are read from the line).
VALUE_GROUPS = frozenset({"devices", "rails", "provider", "backend", "detail", "detail2"})


def _minimal(keys: tuple[str, ...]) -> tuple[str, ...]:
    """Drop every key that contains another key (a line with the longer one has the shorter one too)."""
    return tuple(sorted(k for k in set(keys) if not any(o != k and o in k for o in keys)))


# The prefilter: a line that contains none of these substrings can carry no event (see module docstring).
PREFILTER_KEYS: tuple[str, ...] = (*RULE_KEYS, "libfabric:", "UCX", *ERROR_KEYS)  # SCAN_KEYS before _minimal
SCAN_KEYS: tuple[str, ...] = _minimal(PREFILTER_KEYS)
SCAN_KEYS_BYTES: tuple[bytes, ...] = tuple(k.encode() for k in SCAN_KEYS)


def has_key(text: str) -> bool:
    """True when ``text`` contains a prefilter key.

    Example:
        >>> has_key("Backend UCX was instantiated"), has_key("Using FLASH_ATTN backend.")
        (True, False)
    """
    return any(k in text for k in SCAN_KEYS)
