"""Benchmarks for section 4: serving sweeps (own client and aiperf), KV-transfer sweeps and reports, published figures.

Modules: ``client`` (the kit's one OpenAI streaming client: :func:`~workshop_lib.bench.client.chat` for one request,
sessions for load), ``rawhttp`` (its cheap HTTP/1.1 transport), ``serve`` (the load generator,
:func:`~workshop_lib.bench.serve.run_sweep`), ``stats`` (records, summaries and the one ``percentile``), ``prompts``,
``aiperf`` (command builder and result reader), ``nixl`` (NIXL pair and nixlbench sweeps), ``vram_report`` (the GPU
KV-transfer benchmark's table, goal and report), ``published`` (figures from public sources), ``testserver`` (a
streaming server with known timing). Import them directly; this package imports nothing heavy.
"""
