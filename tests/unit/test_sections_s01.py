"""Tests for sections 01/02 helpers and the eks glue that need no cluster: validation rows, EFA rows, log lines."""

from __future__ import annotations

from pathlib import Path

from workshop_lib.config import WorkshopConfig
from workshop_lib.manifests import render, write_files
from workshop_lib.sections import s01_setup
from workshop_lib.sections.s02_single_node import first_line
from workshop_lib.targets import eks

LABEL = "node.kubernetes.io/instance-type"


def _node(name: str, itype: str, efa: str | None) -> dict:
    alloc = {"vpc.amazonaws.com/efa": efa} if efa is not None else {}
    return {"metadata": {"name": name, "labels": {LABEL: itype}}, "status": {"allocatable": alloc}}


def test_efa_rows_per_gpu_node() -> None:
    t = eks.efa_rows([_node("a", "p5.48xlarge", "32"), _node("b", "p5.48xlarge", "16"), _node("c", "m5.large", None),
                      _node("d", "p5en.48xlarge", None)], WorkshopConfig())
    assert [(r.check, r.status, r.found, r.expected) for r in t.rows] == [
        ("EFA allocatable on a", "PASS", "32", "32 (p5.48xlarge)"),
        ("EFA allocatable on b", "FAIL", "16", "32 (p5.48xlarge)"),
        ("EFA allocatable on d", "FAIL", "missing", "16 (p5en.48xlarge)"),
    ]
    assert "device plugin" in t.rows[1].fix
    assert eks.efa_rows([], WorkshopConfig()).rows[0].found == "no GPU nodes"


def test_validate_rendered_manifests(tmp_path: Path, dgd_crd: Path) -> None:
    cfg = WorkshopConfig()
    files = render(cfg, "single-node") + render(cfg, "cross-node")
    paths = write_files(files, tmp_path)
    table = s01_setup.validate(paths, tmp_path, str(dgd_crd))
    assert len(table) == 2 and table.ok and table.verdict() in ("PASS", "WARN")
    # a WARN may only be the lint's WL011 (the stock worker image carries no EFA libfabric for a LIBFABRIC graph)
    assert all(r.status == "PASS" or "WL011" in r.evidence for r in table.rows), table
    bad = write_files(render(cfg.replace(worker_memory="64Gi"), "cross-node"), tmp_path / "bad")
    t64 = s01_setup.validate(bad, tmp_path / "bad", str(dgd_crd))
    assert t64.verdict() == "FAIL" and "WL001" in t64.rows[0].evidence


def test_validate_without_crd_uses_the_kit_schema(tmp_path: Path, monkeypatch) -> None:
    # a plain clone (no ../shared, no cluster, no helm): still validated, against the kit's schema (issue 19 item 11)
    monkeypatch.setattr(s01_setup, "crd_path", lambda: None)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    paths = write_files(render(WorkshopConfig(), "single-node"), tmp_path)
    row = s01_setup.validate(paths, tmp_path).rows[0]
    assert row.status == "PASS" and "schema: kit schema workshop_lib/manifests/data/dgd-schema-0.9.0.yaml" in row.evidence
    bad = paths[0].read_text().replace("extraPodSpec:", "extraPodSpecs:", 1)
    paths[0].write_text(bad)
    row = s01_setup.validate(paths, tmp_path).rows[0]
    assert row.status == "FAIL" and row.evidence.startswith("schema kit: line ")
    assert "S001 spec.services.Frontend.extraPodSpecs: CRD schema (kit): unknown field 'extraPodSpecs'" in row.evidence


def test_eks_commands_pin_versions() -> None:
    cmds = s01_setup.eks_commands(WorkshopConfig(target="eks"))
    assert "--version 0.9.0" in cmds[0] and "dynamo-crds" in cmds[0]
    assert any("--from-literal=HF_TOKEN=\"$HF_TOKEN\"" in c for c in cmds)


def test_first_line(tmp_path: Path) -> None:
    p = tmp_path / "decode.log"
    p.write_text("x\nBootstrap: decode connecting to 127.0.0.1:50100\ndecode received ACK\n")
    assert first_line(p, "received ACK", "decode connecting") == "Bootstrap: decode connecting to 127.0.0.1:50100"
    assert first_line(p, "nothing") is None and first_line(tmp_path / "missing.log", "x") is None


def test_eks_platform_install_and_uninstall_use_the_same_kube_context(monkeypatch) -> None:
    """WORKSHOP_KUBE_CONTEXT picks the cluster for install_platform; uninstall_platform must remove from that one."""
    from workshop_lib import dynamo_platform, helm_runner

    monkeypatch.setenv("WORKSHOP_KUBE_CONTEXT", "workshop-ctx")
    monkeypatch.setattr(dynamo_platform, "helm_binary", lambda: "helm")
    monkeypatch.setattr(eks, "cluster", lambda: object())
    monkeypatch.setattr(dynamo_platform, "verify_platform", lambda *a, **k: None)
    ran: list[list[str]] = []

    def record(argv: list[str]) -> str:
        ran.append(argv)
        return ""

    monkeypatch.setattr(dynamo_platform, "run_helm", lambda argv, runner=None: record(argv))
    monkeypatch.setattr(helm_runner, "run_helm", lambda argv, runner=None, **_: record(argv))
    target = eks.EksTarget(WorkshopConfig(target="eks"))
    target.install_platform()
    target.uninstall_platform()
    installs = [a for a in ran if "upgrade" in a]
    uninstalls = [a for a in ran if "uninstall" in a]
    assert installs and uninstalls
    assert all(a[a.index("--kube-context") + 1] == "workshop-ctx" for a in installs + uninstalls if "--kube-context" in a)
    assert all("--kube-context" in a for a in installs + uninstalls), ran
