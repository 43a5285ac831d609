"""Small, direct probes of the lab's services on loopback: etcd's HTTP API and NATS's INFO greeting.

They read what the servers themselves say (version, health, JetStream), so a verification row's evidence is the
server's own words rather than "the port is open".

Example:
    >>> parse_nats_info(b'INFO {"version":"2.15.1","jetstream":true,"max_payload":1048576}\\r\\n')["jetstream"]
    True
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx

from workshop_lib.errors import LabError


def parse_nats_info(greeting: bytes) -> dict[str, Any]:
    """The JSON of a NATS server's ``INFO {...}`` greeting.

    Raises:
        LabError: the bytes are not a NATS INFO line.
    """
    line = greeting.split(b"\r\n", 1)[0].decode(errors="replace").strip()
    if not line.startswith("INFO "):
        raise LabError("nats", f"unexpected greeting {line[:60]!r}", "check that NATS (not another server) owns the port")
    try:
        return json.loads(line[5:])
    except json.JSONDecodeError:
        raise LabError("nats", "INFO greeting is not JSON", "check the NATS server version") from None


def nats_info(host: str = "127.0.0.1", port: int = 4222, timeout_s: float = 3.0) -> dict[str, Any]:
    """Connect to NATS and return its INFO (version, jetstream, server_id...).

    Raises:
        LabError: nothing listens there, or it is not NATS.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            buf = b""
            while b"\r\n" not in buf and len(buf) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise LabError(f"nats {host}:{port}", f"cannot connect ({exc.strerror or exc})", "start the lab: workshop lab up") from None
    return parse_nats_info(buf)


def etcd_info(url: str = "http://127.0.0.1:2379", timeout_s: float = 3.0) -> dict[str, Any]:
    """etcd's ``/version`` and ``/health`` merged, e.g. ``{'etcdserver': '3.4.23', 'health': 'true'}``.

    Raises:
        LabError: etcd does not answer.
    """
    out: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as c:
            for path in ("/version", "/health"):
                r = c.get(url.rstrip("/") + path)
                r.raise_for_status()
                out.update(r.json())
    except (httpx.HTTPError, ValueError) as exc:
        raise LabError(f"etcd {url}", f"no answer ({type(exc).__name__})", "start the lab: workshop lab up") from None
    return out


def etcd_keys(prefix: str, url: str = "http://127.0.0.1:2379", timeout_s: float = 3.0) -> list[str]:
    """Keys under ``prefix`` via etcd's v3 JSON gateway (``/v3/kv/range``); used to show Dynamo's registrations.

    Raises:
        LabError: etcd does not answer.
    """
    import base64

    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = {"key": base64.b64encode(prefix.encode()).decode(), "range_end": base64.b64encode(end.encode()).decode(),
            "keys_only": True}
    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as c:
            r = c.post(url.rstrip("/") + "/v3/kv/range", json=body)
            r.raise_for_status()
            kvs = r.json().get("kvs", [])
    except (httpx.HTTPError, ValueError) as exc:
        raise LabError(f"etcd {url}", f"range query failed ({type(exc).__name__})", "start the lab: workshop lab up") from None
    return sorted(base64.b64decode(kv["key"]).decode(errors="replace") for kv in kvs)
