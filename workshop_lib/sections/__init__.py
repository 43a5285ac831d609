"""The steps each workshop notebook calls, one module per section, for both targets.

``common`` (parameters, display, recording), ``s01_setup`` .. ``s04_performance`` (the steps), ``eks`` (the cluster
side, through :mod:`workshop_lib.cluster`), ``probes`` (etcd/NATS as they describe themselves), ``troubleshoot``
(known failures per section). Notebooks stay thin: narrative, parameters, and calls into these modules.
"""
