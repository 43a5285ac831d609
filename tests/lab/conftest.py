"""Fixtures for tests that start real local-lab processes.

``serving_lab`` (session scope) is one running serving lab (etcd, NATS, Dynamo frontend, mocker prefill + decode) in a
temporary lab directory, shared by every test of the session that asks for it; it is stopped at the end of the
session. It yields a :class:`ServingLab` with ``lab`` (the :class:`~workshop_lib.lab.serving.Lab`), ``status`` (the
:class:`~workshop_lib.lab.labstate.LabStatus` returned by ``up``), ``url`` and ``model``. Do not stop or kill its
processes in a test (start your own ``Lab(root=tmp_path)`` for that); reading its logs is fine::

    @pytest.mark.lab
    def test_something(serving_lab):
        r = chat(serving_lab.url, serving_lab.model, "hi", stream=True)
        assert r.tokens > 0
        log = serving_lab.lab.log_path("frontend")

Tests skip with a one-line reason where the machine cannot run the lab (not Linux, or etcd/nats-server missing: run
``workshop lab setup``). ``lab_binaries_or_skip`` does that check for tests that start their own lab.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from workshop_lib.errors import LabError
from workshop_lib.lab.serving import Lab, LabStatus, find_binaries


def lab_binaries_or_skip() -> dict[str, str]:
    """The lab's binaries, or skip the calling test with the reason."""
    if platform.system() != "Linux":
        pytest.skip("the local lab needs Linux")
    try:
        return find_binaries()
    except LabError as exc:
        pytest.skip(f"local lab not set up: {exc}")


def engine_or_skip() -> None:
    """Skip the calling test with the reason where the real engine (vLLM) is not installed or the machine is too
    small for it."""
    from workshop_lib.lab import setup as lab_setup

    lab_binaries_or_skip()
    missing = lab_setup.engine_missing()
    if missing:
        pytest.skip(
            f"real engine not installed ({len(missing)} pins missing, e.g. {missing[0]}): run workshop lab setup"
        )
    short = lab_setup.engine_shortfall()
    if short:
        pytest.skip(f"machine too small for the real engine: {short}")


@dataclass(frozen=True)
class ServingLab:
    lab: Lab
    status: LabStatus
    url: str
    model: str
    root: Path


@pytest.fixture(scope="session")
def serving_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingLab]:
    """One running serving lab for the whole session (see the module docstring)."""
    lab_binaries_or_skip()
    root = tmp_path_factory.mktemp("serving-lab")
    lab = Lab(root=root)
    try:
        st = lab.up(timeout=180, progress=False)
        assert st.frontend_url and st.model
        yield ServingLab(lab, st, st.frontend_url, st.model, root)
    finally:
        lab.down()
