from __future__ import annotations

import json
import subprocess
import sys

from workshop_lib import versions
from workshop_lib.cli import main


def test_nothing_is_unpinned() -> None:
    assert versions.check_no_latest() == []
    for p in versions.IMAGES.values():
        assert ":latest" not in p.version and ":" in p.version.rsplit("/", 1)[-1]


def test_stack_matches_the_workshop() -> None:
    assert versions.COMPONENTS["dynamo"].version == "0.9.0"
    assert versions.COMPONENTS["nixl"].version == "0.9.0"
    assert versions.COMPONENTS["vllm"].version == "0.14.1"
    assert versions.image("dynamo-frontend") == "nvcr.io/nvidia/ai-dynamo/dynamo-frontend:0.9.0"
    assert versions.chart_version("dynamo-platform") == "0.9.0"


def test_python_pins_are_exact_and_cover_the_lab() -> None:
    pins = versions.python_pins()
    assert pins["ai-dynamo"].version == "0.9.0"
    assert pins["nixl-cu12"].version == "0.9.0"
    assert versions.nixl_wheels() == ["nixl==0.9.0", "nixl-cu12==0.9.0"]
    assert all(p.version and p.version[0].isdigit() for p in pins.values())


def test_workshop_versions_table(capsys) -> None:
    assert main(["versions"]) == 0
    out = capsys.readouterr().out
    assert "dynamo-platform" in out and "nixl-cu12" in out and "0.9.0" in out


def test_workshop_versions_json(capsys) -> None:
    assert main(["versions", "--json", "--kind", "image"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["kind"] for r in rows} == {"image"}
    assert any(r["name"] == "vllm-runtime" for r in rows)


def test_console_script_help() -> None:
    out = subprocess.run([sys.executable, "-m", "workshop_lib.cli", "--help"], capture_output=True, text=True, check=True)
    assert "versions" in out.stdout


def test_bad_option_exits_non_zero(capsys) -> None:
    assert main(["config", "--set", "kv_backend=TCP"]) == 1
    assert "kv_backend" in capsys.readouterr().err


def test_only_the_chosen_subcommand_is_imported() -> None:
    code = (
        "import sys; from workshop_lib.cli import main; main(['versions']); "
        "print(sorted(m for m in sys.modules if m.startswith(('jsonschema', 'pandas', 'workshop_lib.clicmds.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['workshop_lib.clicmds.versions']"


def test_stock_runtime_images_and_the_efa_placeholder() -> None:
    from workshop_lib import versions

    assert versions.stock_runtime_without_libfabric(versions.image("vllm-runtime"))
    assert versions.stock_runtime_without_libfabric(versions.image("tensorrtllm-runtime"))
    assert not versions.stock_runtime_without_libfabric(versions.image("dynamo-frontend"))  # not a runtime image
    assert not versions.stock_runtime_without_libfabric("nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.1.0-efa")
    assert not versions.stock_runtime_without_libfabric("123.dkr.ecr.us-east-2.amazonaws.com/dynamo-efa:0.9.0")
    for name in ("vllm-runtime-efa", "tensorrtllm-runtime-efa"):
        ref = versions.image(name)
        assert versions.is_efa_placeholder(ref) and ref.endswith(":0.9.0-efa") and "--make-efa" in versions.IMAGES[name].note
    assert versions.check_no_latest() == []


def test_efa_device_plugin_image_is_the_charts_app_version() -> None:
    from workshop_lib import versions

    assert versions.CHARTS["aws-efa-k8s-device-plugin"].version == "v0.5.6"
    assert versions.image("efa-device-plugin").endswith("/eks/aws-efa-k8s-device-plugin:v0.5.4")
