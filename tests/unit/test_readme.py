"""The README's promises: two quick-start commands, CI runs the test command, the versions it lists are the pinned ones."""

from __future__ import annotations

import re

from workshop_lib import versions


def test_quick_start_is_two_make_commands(repo_root) -> None:
    text = (repo_root / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_ci_runs_the_readme_test_command(repo_root) -> None:
    assert re.search(r"^make test$", (repo_root / ".ci/run").read_text(), re.M)


def test_readme_versions_match_the_table(repo_root) -> None:
    text = (repo_root / "README.md").read_text()
    table = text.split("## Versions", 1)[1]
    for name, label in [("dynamo", "Dynamo"), ("nixl", "NIXL"), ("tensorrt-llm", "TensorRT-LLM"), ("vllm", "vLLM"),
                        ("cuda", "CUDA"), ("libfabric", "libfabric")]:
        row = next(line for line in table.splitlines() if label in line and line.startswith("|"))
        assert versions.COMPONENTS[name].version in row, (name, row)


def test_makefile_targets_exist(repo_root) -> None:
    text = (repo_root / "Makefile").read_text()
    for target in ("run:", "test:", "lab:", "clean:", "setup:"):
        assert re.search(rf"^{target}", text, re.M), target


def test_readme_engine_thresholds_are_the_ones_setup_checks(repo_root) -> None:
    from workshop_lib.lab import setup as lab_setup

    text = " ".join((repo_root / "README.md").read_text().split())
    assert f"{lab_setup.ENGINE_MIN_DISK_GIB:.0f} GiB of free disk" in text
    assert f"{lab_setup.ENGINE_MIN_RAM_GIB:.0f} GiB of free RAM" in text
