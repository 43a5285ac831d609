"""Where the DGD schema comes from (issue 19 item 11): named file, cluster, the dynamo-crds chart via helm, the kit's own."""

from __future__ import annotations

import copy
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.support.k8s_fixtures import serve_scenario
from workshop_lib.manifests import crdsource, render_all
from workshop_lib.manifests.crdsource import KIT_SCHEMA, kit_schema_from_crd, kit_source, resolve
from workshop_lib.manifests.documents import load_documents, yaml_files
from workshop_lib.manifests.schema import schema_errors
from workshop_lib.manifests.validate import errors, validate_paths


@pytest.fixture
def no_cluster_no_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(crdsource, "_PULL_FAILED", {})
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "bin").mkdir()
    return tmp_path


def test_kit_schema_is_the_real_crd_projected_and_current(dgd_crd: Path) -> None:
    crd = yaml.safe_load(dgd_crd.read_text())
    want = kit_schema_from_crd(crd)
    have = yaml.safe_load(KIT_SCHEMA.read_text())
    assert have == want, "refresh with workshop_lib.manifests.crdsource.write_kit_schema(<the 0.9.0 DGD CRD yaml>)"


def test_kit_schema_agrees_with_the_real_crd_on_every_rendered_dgd_and_mutation(dgd_crd: Path) -> None:
    real = crdsource.file_source(dgd_crd).schema
    kit = kit_source().schema
    for dgd in crdsource.kit_dgds():
        assert schema_errors(kit, dgd) == [] == schema_errors(real, dgd)
        # broken on purpose: both schemas must refuse each of these the same way
        svc = next(iter(dgd["spec"]["services"]))
        for mutate in (lambda d, s=svc: d["spec"].__setitem__("backendFramework", "vllmx"),
                       lambda d, s=svc: d["spec"]["services"][s].__setitem__("replicas", "one"),
                       lambda d, s=svc: d["spec"]["services"][s].__setitem__("extraPodSpecs", {}),
                       lambda d, s=svc: d["spec"]["services"][s]["extraPodSpec"]["mainContainer"].__setitem__("imagee", "x")):
            bad = copy.deepcopy(dgd)
            mutate(bad)
            k, r = schema_errors(kit, bad), schema_errors(real, bad)
            assert k and [e.path for e in k] == [e.path for e in r], (k, r)


def test_plain_clone_validates_against_the_kit_schema(no_cluster_no_helm: Path, repo_root: Path) -> None:
    src = resolve()
    assert src.kind == "kit" and "cluster: no kubeconfig" in src.source and "helm not on PATH" in src.source
    assert errors(validate_paths([repo_root / "manifests"], src)) == []
    docs = [d for p in yaml_files([repo_root / "manifests"]) for d in load_documents(p) if d.kind == "DynamoGraphDeployment"]
    assert len(docs) == 6 and all(schema_errors(src.schema, d.data) == [] for d in docs)
    assert len({f.path for f in render_all()}) == 16


def _fake_helm(bin_dir: Path, crd_file: Path, log: Path) -> None:
    script = bin_dir / "helm"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        PATH=/usr/bin:/bin
        echo "$@" >> {log}
        [ "$1" = pull ] || exit 2
        while [ $# -gt 0 ]; do [ "$1" = --untardir ] && dir="$2"; shift; done
        mkdir -p "$dir/dynamo-crds/templates" && cp {crd_file} "$dir/dynamo-crds/templates/"
        """))
    script.chmod(0o755)


def test_chart_source_pulls_once_into_the_cache(no_cluster_no_helm: Path, dgd_crd: Path) -> None:
    log = no_cluster_no_helm / "helm.log"
    _fake_helm(no_cluster_no_helm / "bin", dgd_crd, log)
    src = resolve()
    assert src.kind == "chart" and src.source.startswith("dynamo-crds 0.9.0 chart (")
    assert log.read_text().split() == ["pull", "oci://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts/dynamo-crds", "--version",
                                       "0.9.0", "--untar", "--untardir", log.read_text().split()[-1]]
    assert resolve().kind == "chart" and len(log.read_text().splitlines()) == 1  # cached: no second pull


def test_chart_source_failure_falls_back_to_the_kit(no_cluster_no_helm: Path) -> None:
    helm = no_cluster_no_helm / "bin" / "helm"
    helm.write_text("#!/bin/sh\necho 'Error: failed to do request: dial tcp: lookup helm.ngc.nvidia.com' >&2\nexit 1\n")
    helm.chmod(0o755)
    src = resolve()
    assert src.kind == "kit" and "chart: helm pull dynamo-crds Error: failed to do request" in src.source
    helm.write_text("#!/bin/sh\nexit 99\n")  # a second validation in this process does not pull (or wait) again
    assert "Error: failed to do request" in resolve().source


def test_cluster_source_reads_the_installed_crd(no_cluster_no_helm: Path, dgd_crd: Path) -> None:
    real = yaml.safe_load(dgd_crd.read_text())
    real.setdefault("metadata", {}).setdefault("labels", {})["helm.sh/chart"] = "dynamo-crds-0.9.0"
    with serve_scenario("healthy") as s:
        s.mock.put(real)  # the real 0.9.0 CRD, as the dynamo-crds chart installs it
        os.environ["KUBECONFIG"] = str(s.kubeconfig)
        src = resolve()
    assert src.kind == "cluster" and src.source == "cluster CRD dynamographdeployments.nvidia.com (dynamo-crds-0.9.0)"
    assert src.schema["properties"]["spec"]["additionalProperties"] is False


def test_named_file_wins(no_cluster_no_helm: Path, dgd_crd: Path) -> None:
    src = resolve(dgd_crd)
    assert src.kind == "file" and src.source == f"CRD file {dgd_crd}"
