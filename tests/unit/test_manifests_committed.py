"""The renders committed under manifests/: current, valid against the 0.9.0 CRD, pinned images, no token."""

from __future__ import annotations

import pytest

from workshop_lib import versions
from workshop_lib.manifests import render_all
from workshop_lib.manifests.addons import HF_TOKEN_PLACEHOLDER
from workshop_lib.manifests.documents import load_documents, load_text, yaml_files
from workshop_lib.manifests.lint import image_problem
from workshop_lib.manifests.profiles import ALL_COMMAND
from workshop_lib.manifests.validate import validate_paths
from workshop_lib.manifests.views import containers


@pytest.fixture(scope="module")
def rendered():
    return render_all()


def test_committed_renders_are_current(repo_root, rendered):
    out = repo_root / "manifests"
    stale = [f.path for f in rendered if not (out / f.path).is_file() or (out / f.path).read_text() != f.text]
    assert not stale, f"committed renders are out of date: {stale}; refresh with `{ALL_COMMAND}`"
    expected = {f.path for f in rendered}
    extra = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "README.md"
             and str(p.relative_to(out)) not in expected]
    assert not extra, f"files under manifests/ that no render produces: {extra}; delete them and run `{ALL_COMMAND}`"


def test_committed_manifests_validate_against_the_crd(repo_root, dgd_crd):
    findings = validate_paths([repo_root / "manifests"], dgd_crd)
    # Only warnings, and only on LIBFABRIC files: the EFA image placeholder (WL011) and TRT-LLM's UCX-only note (WL012)
    assert [f.format() for f in findings if f.code not in ("WL011", "WL012")] == []
    assert {f.severity for f in findings} == {"warning"} and all("libfabric" in f.file for f in findings)
    dgds = [d for p in yaml_files([repo_root / "manifests"]) for d in load_documents(p) if d.kind == "DynamoGraphDeployment"]
    assert len(dgds) == 6


def test_committed_libfabric_manifests_say_which_image_they_need(repo_root):
    for p in sorted((repo_root / "manifests").rglob("*libfabric*.yaml")):
        text = p.read_text()
        head = text.split("apiVersion", 1)[0]
        assert "REPLACE_WITH_YOUR_EFA_IMAGE/" in text and "--make-efa" in head and "fi_info -p efa" in head, p
        assert "nvcr.io/nvidia/ai-dynamo/vllm-runtime" not in text and "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime" not in text
    assert not list((repo_root / "manifests" / "02-single-node").glob("*libfabric*"))  # one node: UCX


def test_committed_manifests_carry_no_no_op_knob(repo_root):
    from workshop_lib.manifests.envaudit import UNREAD

    for p in sorted((repo_root / "manifests").rglob("*.yaml")):
        for name in UNREAD:
            if name != "TRTLLM_NIXL_KVCACHE_BACKEND":
                assert f"name: {name}\n" not in p.read_text(), f"{p} sets the no-op {name}"


def test_hf_secret_template_holds_no_token(repo_root):
    doc = load_documents(repo_root / "manifests" / "01-platform" / "hf-token-secret.template.yaml")[0].data
    assert doc["kind"] == "Secret" and doc["metadata"]["name"] == "hf-token-secret"
    assert doc["stringData"] == {"HF_TOKEN": HF_TOKEN_PLACEHOLDER} and "data" not in doc
    for p in (repo_root / "manifests").rglob("*"):
        if p.is_file():
            assert "hf_" not in p.read_text().replace("hf_token", ""), f"{p} looks like it holds a Hugging Face token"


def test_every_image_is_pinned_and_from_versions(rendered):
    pinned = {p.version for p in versions.IMAGES.values()}
    seen = set()
    for f in rendered:
        for doc in load_text(f.text, f.path) if f.path.endswith(".yaml") else []:
            for path, c, _ in containers(doc):
                image = c.get("image")
                assert image, f"{f.path} {path}: no image"
                assert image_problem(image) is None, f"{f.path} {path}: {image} is not pinned"
                assert image in pinned, f"{f.path} {path}: {image} is not in workshop_lib/versions.py IMAGES"
                seen.add(image)
    assert {versions.image(n) for n in ("vllm-runtime", "tensorrtllm-runtime", "dynamo-frontend", "efa-device-plugin",
                                        "gdrcopy-installer", "aiperf")} <= seen
    values = next(f for f in rendered if f.path.endswith("values-dynamo-platform.yaml")).docs[0]
    image = values["dynamo-operator"]["controllerManager"]["manager"]["image"]
    assert f"{image['repository']}:{image['tag']}" == versions.image("kubernetes-operator")



def test_manifests_readme_prescribes_no_no_op_knob(repo_root):
    import re

    from workshop_lib.manifests.envaudit import UNREAD

    text = (repo_root / "manifests" / "README.md").read_text()
    for name in (n for n, u in UNREAD.items() if not u.frameworks):  # TRTLLM_NIXL_KVCACHE_BACKEND is TRT-LLM's switch
        assert not re.search(rf"\b{name}=", text), f"manifests/README.md sets the no-op {name}"
    assert "Patched NIXL 0.8.0" in text and "only UCX" in text and "--make-efa" in text
