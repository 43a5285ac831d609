"""Manifests for the four workshop sections, rendered from one config and validated offline.

Example:
    >>> from workshop_lib.config import WorkshopConfig
    >>> from workshop_lib.manifests import render
    >>> [f.path for f in render(WorkshopConfig(), "single-node-vllm")]
    ['02-single-node/vllm-disagg-ucx.yaml']
"""

from workshop_lib.manifests.documents import Doc, RenderedFile, load_documents, load_text
from workshop_lib.manifests.helm import HelmRelease, platform_releases
from workshop_lib.manifests.profiles import PROFILES, render, render_all, render_to_dir, write_files

__all__ = [
    "Doc",
    "HelmRelease",
    "PROFILES",
    "RenderedFile",
    "load_documents",
    "load_text",
    "platform_releases",
    "render",
    "render_all",
    "render_to_dir",
    "write_files",
]
