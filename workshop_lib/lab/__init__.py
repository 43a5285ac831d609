"""The local lab: Dynamo disaggregated serving and NIXL KV-transfer pairs on one GPU-less Linux machine.

Submodules: ``setup`` (system packages, libcuda stub, libfabric), ``serving`` (etcd, NATS, frontend, mocker
prefill/decode), ``model`` (offline tokenizer model directory), ``nixl_pair`` (two NIXL agents moving real bytes).
Import them directly; this package imports nothing heavy.
"""
