"""The kit's lists of choices, spelled once and importable without cost (no imports here): the CLI's argparse
``choices``, :mod:`workshop_lib.config`'s validation, the notebook widgets and the streaming client read them.

>>> "LIBFABRIC" in KV_BACKENDS, ENDPOINTS["chat"]
(True, '/v1/chat/completions')
"""

TARGETS = ("local", "eks")
FRAMEWORKS = ("vllm", "trtllm")
KV_BACKENDS = ("UCX", "LIBFABRIC")
PROFILES = ("platform", "single-node", "cross-node", "bench")
# ``vllm``: real vLLM workers (the workshop's engine); ``mocker``: Dynamo's mocker engine, for machines without the
# memory/GPU for vLLM. WORKSHOP_ENGINE sets the default (e.g. ``WORKSHOP_ENGINE=mocker`` on a small laptop or CI).
ENGINES = ("vllm", "mocker")
# The OpenAI-compatible endpoints the streaming client speaks, and how it connects (bench/client.py).
ENDPOINTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
TRANSPORTS = ("auto", "raw", "httpx")
