"""The steps each workshop notebook calls, one module per section, for both targets.

``common`` (parameters, display, recording), ``s01_setup`` .. ``s04_performance`` and ``s04_vram`` (the steps; each
calls ``ctx.target``, :mod:`workshop_lib.targets`, and never branches on the target), ``probes`` (etcd/NATS as they
describe themselves), ``troubleshoot`` (known failures per section). Notebooks stay thin: narrative, parameters, and
calls into these modules.
"""
