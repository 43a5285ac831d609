"""The table of env vars the pinned stack does not read (issue 19 item 4)."""

from __future__ import annotations

import re

from workshop_lib.manifests.envaudit import UNREAD, unread_env, unread_names

NO_OPS = ["FI_EFA_ENABLE_SHM", "FI_EFA_DEV_LIST", "NIXL_SKIP_TOPOLOGY_CHECK", "NIXL_LIBFABRIC_MAX_RAILS", "NIXL_BACKEND",
          "VLLM_NIXL_KVCACHE_BACKEND"]


def test_every_no_op_of_the_issue_is_flagged_with_a_source_and_a_fix() -> None:
    env = {n: "0" for n in NO_OPS} | {"FI_PROVIDER": "efa", "FI_EFA_ENABLE_SHM_TRANSFER": "0", "NIXL_LOG_LEVEL": "INFO"}
    found = unread_env(env)
    assert [u.name for u in found] == NO_OPS
    for u in found:
        assert u.value == "0" and u.source and "no-op" in u.message() and u.fix().startswith(f"remove {u.name}; ")
        words = set(re.findall(r"[A-Z][A-Z0-9_]+", u.fix().split(";", 1)[1]))
        assert not words & set(NO_OPS), u.fix()  # a fix never prescribes another no-op


def test_variables_that_are_read_pass() -> None:
    read = {"FI_PROVIDER": "efa", "FI_EFA_USE_DEVICE_RDMA": "1", "FI_EFA_ENABLE_SHM_TRANSFER": "0", "FI_EFA_IFACE": "rdmap0s1",
            "NIXL_LOG_LEVEL": "DEBUG", "NIXL_PLUGIN_DIR": "/x", "VLLM_NIXL_SIDE_CHANNEL_PORT": "5600"}
    assert unread_env(read) == [] and unread_env(read, "vllm") == [] and unread_env(read, "trtllm") == []


def test_engine_specific_entry() -> None:
    assert [u.name for u in unread_env({"TRTLLM_NIXL_KVCACHE_BACKEND": "LIBFABRIC"}, "vllm")] == ["TRTLLM_NIXL_KVCACHE_BACKEND"]
    assert unread_env({"TRTLLM_NIXL_KVCACHE_BACKEND": "LIBFABRIC"}, "trtllm") == []
    assert "TRTLLM_NIXL_KVCACHE_BACKEND" in unread_names("vllm") and "TRTLLM_NIXL_KVCACHE_BACKEND" not in unread_names("trtllm")
    assert set(NO_OPS) <= set(UNREAD)
