"""The local lab: Dynamo disaggregated serving and NIXL KV-transfer pairs on one GPU-less Linux machine.

Three rooms, one import each:

- the installer: ``setup`` (a package: ``apt``, ``native`` libcuda stub and libcudart, ``libfabric``, ``engine``;
  ``setup.setup()``/``status()``/``lab_env()``), ``model`` (the offline tiny model directory);
- the serving lab: ``serving`` (``Lab``: up/status/down), ``graph``/``graphplan`` (the DGD -> processes),
  ``stack``, ``supervisor``, ``labstate``, ``procs``, ``netns``/``labnet``/``crossnode`` (namespaces), ``kvcheck``,
  ``kvmetrics``, ``breakdown``;
- the NIXL pair: ``nixl_pair`` (``run_pair``: spec, rows, the run), ``nixl_launch`` (the two agent processes),
  ``nixl_agent`` (the worker), ``nixl_plan`` (pure sizing and log scanning), ``nixl_diag`` (checksum mismatches),
  ``nixl_cli`` (``workshop lab setup`` and ``workshop lab nixl``).

Requests to the frontend go through the kit's one client, :mod:`workshop_lib.bench.client`.
Import the modules directly; this package imports nothing heavy.
"""
