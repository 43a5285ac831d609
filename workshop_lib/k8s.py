"""Kubernetes names the kit uses, each spelled once: the DynamoGraphDeployment API and CRD, extended resources and
well-known node labels. A leaf module (imports nothing): manifests, cluster, preflight and the targets import it.

Sources: the Dynamo 0.9.0 ``dynamo-crds`` chart (group ``nvidia.com``, version ``v1alpha1``, kind
``DynamoGraphDeployment``); the AWS EFA device plugin (``vpc.amazonaws.com/efa``); the NVIDIA device plugin
(``nvidia.com/gpu``); Kubernetes well-known labels (``node.kubernetes.io/instance-type``,
``topology.kubernetes.io/zone``).
"""

from __future__ import annotations

DGD_API = "nvidia.com/v1alpha1"  # apiVersion of a DynamoGraphDeployment
DGD_KIND = "DynamoGraphDeployment"
DGD_CRD = "dynamographdeployments.nvidia.com"  # the CRD's metadata.name
EFA_RESOURCE = "vpc.amazonaws.com/efa"  # extended resource of the AWS EFA device plugin
GPU_RESOURCE = "nvidia.com/gpu"  # extended resource of the NVIDIA device plugin
INSTANCE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
