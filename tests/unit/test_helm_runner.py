"""workshop_lib.helm_runner: the one Helm runner (a fake ``helm`` on PATH; no cluster, no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workshop_lib.errors import PlatformError
from workshop_lib.helm_runner import run_helm


def _helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    helm = tmp_path / "helm"
    helm.write_text("#!/bin/sh\n" + body + "\n")
    helm.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


def test_stdout_on_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _helm(tmp_path, monkeypatch, 'echo "$@"')
    assert run_helm(["helm", "list", "-n", "x"]).strip() == "list -n x"


def test_not_on_path_names_helm_and_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PlatformError) as exc:
        run_helm(["helm", "version"])
    assert exc.value.where == "helm" and "install Helm 3" in exc.value.fix


def test_failure_is_the_last_error_line_with_a_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _helm(tmp_path, monkeypatch, "echo 'Error: Kubernetes cluster unreachable' >&2; exit 1")
    with pytest.raises(PlatformError) as exc:
        run_helm(["helm", "upgrade", "--install", "dynamo-crds", "oci://x"])
    assert exc.value.where == "helm release dynamo-crds"
    assert exc.value.problem == "Error: Kubernetes cluster unreachable" and "kubeconfig" in exc.value.fix


def test_no_answer_within_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _helm(tmp_path, monkeypatch, f"exec {shutil.which('sleep')} 30")
    with pytest.raises(PlatformError, match=r"helm pull oci://x: no answer in 1 s"):
        run_helm(["helm", "pull", "oci://x"], timeout_s=1)
