"""Benchmarks for section 4: serving sweeps (own client and aiperf), KV-transfer sweeps, published reference figures.

Modules: ``serve`` (streaming load generator, :func:`~workshop_lib.bench.serve.run_sweep`), ``stats`` (records and
percentiles), ``prompts``, ``aiperf`` (command builder and result reader), ``nixl`` (NIXL pair and nixlbench sweeps),
``published`` (figures from public sources), ``testserver`` (a streaming server with known timing).
Import them directly; this package imports nothing heavy.
"""
