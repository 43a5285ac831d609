"""Write the four workshop notebooks from this file (``python notebooks/build.py``); outputs are never committed.

The notebooks are generated so that their structure stays uniform (objectives, parameters, steps, verification,
troubleshooting, what you learned, teardown) and so that a test can check the committed files are current
(``python notebooks/build.py --check``). Narrative lives here; logic lives in ``workshop_lib.sections``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from workshop_lib.config import FRAMEWORKS, INSTANCE_TYPES, KV_BACKENDS

# The drop-down choices named in the parameters cell come from workshop_lib.config (which validates them).
_INSTANCES = " | ".join(f"{t.name} ({t.efa} EFA)" if i == 0 else t.name for i, t in enumerate(INSTANCE_TYPES.values()))

HERE = Path(__file__).resolve().parent
Cell = tuple[str, str] | tuple[str, str, list[str]]

# Parameters every notebook shares (papermill overrides any of them; names map to WorkshopConfig fields).
COMMON_PARAMS = f'''TARGET = "local"              # "local": the lab on this machine; "eks": your cluster via kubeconfig
NAMESPACE = "dynamo-workshop"    # where the workshop's DynamoGraphDeployments go (eks)
PLATFORM_NAMESPACE = "dynamo-system"
MODEL = "Qwen/Qwen3-0.6B"       # eks: the model the workers serve (local serves the lab's offline tokenizer model)
FRAMEWORK = "vllm"              # {" | ".join(FRAMEWORKS)}
KV_BACKEND = "LIBFABRIC"        # {" | ".join(sorted(KV_BACKENDS))}: the NIXL backend that moves the KV cache
INSTANCE_TYPE = "p5.48xlarge"   # {_INSTANCES}
PREFILL_NODE = None             # eks: node name for the prefill worker (None: anti-affinity picks)
DECODE_NODE = None              # eks: node name for the decode worker
WORKER_IMAGE = None             # eks: an image built with EFA (needed for LIBFABRIC; None: a placeholder that FAILs)
DEPLOY_TIMEOUT_S = 1800         # eks: TRT-LLM JIT alone takes 15-20 min on P5
PRICE_PER_NODE_HOUR = 55.04     # eks: USD per GPU node-hour, for the running cost (use your own price)
TEARDOWN = False                # True: the last cell removes what this notebook created'''

PARAM_NAMES = ["TARGET", "NAMESPACE", "PLATFORM_NAMESPACE", "MODEL", "FRAMEWORK", "KV_BACKEND", "INSTANCE_TYPE",
               "PREFILL_NODE", "DECODE_NODE", "WORKER_IMAGE", "DEPLOY_TIMEOUT_S", "PRICE_PER_NODE_HOUR", "TEARDOWN"]


def params_cell(extra: str = "", extra_names: list[str] | None = None) -> list[Cell]:
    """The tagged parameters cell, then the cell that turns it into a validated context (with the optional form)."""
    body = COMMON_PARAMS + ("\n" + extra if extra else "")
    collect = "PARAMS = common.parameters(globals())  # every UPPER-CASE parameter above (and papermill's)"
    return [
        ("code", body, ["parameters"]),
        ("markdown", "In JupyterLab the cell below shows a form over these parameters: edit it, then run on. "
                     "Headless (papermill, `workshop run`) it shows nothing and the values above are used."),
        ("code", f"{collect}\nform = parameter_form(PARAMS)\nform"),
    ]


def start_cell(section: str, module: str) -> Cell:
    return ("code", f'ctx = common.start(form.values(), "{section}")\nprint(common.banner(ctx))')


def closing(section: str, module: str, learned: list[str], teardown_step: str = "teardown") -> list[Cell]:
    points = "\n".join(f"{i}. {p}" for i, p in enumerate(learned, 1))
    return [
        ("markdown", "## Troubleshooting\n\nThe failures people actually hit in this section, with their cause and fix "
                     "(the source column says where each was reported)."),
        ("code", f'troubleshoot.table("{section}", ctx.cfg.target)'),
        ("markdown", f"## What you learned\n\n{points}"),
        ("markdown", "## Teardown\n\nSafe to run twice. With `TEARDOWN = False` it only says what it would leave "
                     "running (the next notebook builds on it); set `TEARDOWN = True` (or "
                     f"`workshop run --notebooks {section} -p TEARDOWN True`) to remove it."),
        ("code", f"for line in {module}.teardown(ctx, TEARDOWN):\n    print(line)\nprint(common.cost_note(ctx, final=True))\n"
                 f"print(dgd.command_block(\"{teardown_step}\", ctx.cfg))"),
    ]


# ===================================================================================================== 01
NB01: list[Cell] = [
    ("markdown", """# 01 · Cluster setup (15 min)

**Goal:** a cluster (or, with `TARGET = "local"`, this machine) ready for disaggregated serving: the Dynamo platform
(operator, etcd, NATS), GPU nodes that expose their EFA devices, GDRCopy, and the Hugging Face token secret.

By the end you can:
- install the Dynamo 0.9.0 CRDs and platform with Helm, with the one override the 0.9.0 chart needs;
- check that each P5 node advertises **32** `vpc.amazonaws.com/efa` devices and runs a GDRCopy pod;
- read a `DynamoGraphDeployment` part by part before you ever apply one;
- store the HF token in a Kubernetes Secret without it ever appearing on screen or in the notebook;
- read every step's PASS/WARN/FAIL table and act on its *fix* column.

| `TARGET` | what this notebook does |
|---|---|
| `eks` | preflight checks, `helm upgrade --install` of `dynamo-crds` and `dynamo-platform`, waits for the pods, checks EFA and GDRCopy, creates the secret |
| `local` | starts the lab's etcd and NATS (and the serving processes notebook 02 uses), probes them, renders and validates every manifest offline and prints the commands an eks user runs |

Run the cells top to bottom. Headless: `workshop run --target local --notebooks 01`. How long each notebook takes on
each target (local measured, EKS estimated, with the basis of each estimate):"""),
    ("code", "from workshop_lib.lessons import dgd, predict, timing\n"
             "from workshop_lib.sections import common, troubleshoot\n"
             "from workshop_lib.sections import s01_setup as s01\n"
             "from workshop_lib.widgets import parameter_form"),
    ("code", "timing.timing_table()"),
    *params_cell(),
    start_cell("01", "s01"),
    ("markdown", """## Step 1 · Prerequisites

On eks the preflight checks the things that break deployments later: the API server answers, the GPU nodes are
P5 in one availability zone, EFA and GPUs are allocatable, hugepages exist, and the CRDs are (or are not yet)
installed. On local, `workshop lab setup` installed etcd, NATS, the libcuda stub and libfabric 2.x once; this is
what it found."""),
    ("code", "s01.prerequisites(ctx)"),
    ("markdown", """## Step 2 · The Dynamo platform

The platform is three things: the **operator** (turns a `DynamoGraphDeployment` into pods), **etcd** and **NATS**
with JetStream (the event plane). Where workers register depends on the discovery backend: the 0.9.0 platform chart
uses Kubernetes discovery by default on eks (the operator and frontend find workers through the API server), while
the local lab has no API server and its workers register as keys in etcd. On eks both charts are pinned
to 0.9.0, and the operator image tag is overridden because the 0.9.0 chart falls back to 0.7.1. On local the same
two services run as processes on loopback, together with the frontend and the two workers of notebook 02.
The cell after it prints what an eks attendee types for the same step."""),
    ("code", "s01.platform(ctx)"),
    ("code", "print(dgd.command_block(\"platform\", ctx.cfg))"),
    ("markdown", """## Step 3 · Manifests, rendered and validated offline

Every manifest the workshop applies is rendered from the parameters above and validated against the
`DynamoGraphDeployment` CRD schema and the workshop's lint rules (ports, memory, EFA, backend flags) *before* anything
touches a cluster. These are the commands an eks attendee runs by hand for this section:"""),
    ("code", "files, manifest_checks = s01.render_manifests(ctx)\nctx.state['manifest_checks'] = manifest_checks\n"
             "common.show(files)\nmanifest_checks"),
    ("code", "for command in s01.eks_commands(ctx.cfg):\n    print(command)"),
    ("markdown", """### What a DynamoGraphDeployment says

This is the graph notebook 03 deploys across two nodes, exactly as the kit rendered it (the file under `manifests/`
is the same text). Read it top to bottom: `services` holds one entry per role; `componentType` (and
`subComponentType`) tells the operator what each one is; the workers' `args` carry the role flag and
`--kv-transfer-config`, the only place vLLM reads the NIXL backend from; `resources` are what the pod gets (memory,
GPU, EFA devices); `envs` tune logging and libfabric. The table after the YAML explains each part."""),
    ("code", "view = dgd.dgd_view(ctx.cfg, \"cross-node\")\nview"),
    ("code", "view.parts"),
    ("markdown", """### Predict, then run

Before looking at the `resources` rows above: how many EFA devices does each worker of the cross-node graph ask
for on a p5.48xlarge? Write your guess in `my_efa_guess` (for example `my_efa_guess = 8`) and run both cells."""),
    ("code", "my_efa_guess = None  # your prediction: a number"),
    ("code", "predict.ask(\"01\", my_efa_guess, ctx.cfg)"),
    ("markdown", """## Step 4 · The Hugging Face token

The workers download the model, so they need your token. It is read from `HF_TOKEN` in the environment (or typed at
a hidden prompt), goes straight into the Secret `hf-token-secret` under the key **`HF_TOKEN`** (a key named `token`
is not picked up and the download fails with HTTP 401), and is never printed or kept in this notebook. On local the
lab serves an offline model, so nothing is stored."""),
    ("code", "print(dgd.command_block(\"secret\", ctx.cfg))\nprint(s01.hf_token(ctx))"),
    ("markdown", """## Verification

One table for the whole section. Every row says what was found, what was expected, the evidence (a line the
server or the cluster itself returned) and, when something is wrong, the fix."""),
    ("code", "checks = common.record_checks(\"setup\", s01.verify(ctx))\nchecks"),
    *closing("01", "s01", [
        "The Dynamo platform is an operator plus etcd and NATS (events); discovery is Kubernetes on eks, etcd on local; "
        "Helm installs it, pinned to 0.9.0.",
        "A P5 node exposes 32 EFA devices to pods as `vpc.amazonaws.com/efa`; without the device plugin it exposes none.",
        "A DynamoGraphDeployment is services with a component type, args (the backend is in --kv-transfer-config), "
        "resources and envs; read it before you apply it.",
        "Secrets go from the environment into a Kubernetes Secret, never through the notebook's output.",
        "Manifests are validated against the CRD schema before they are applied, so mistakes surface here, not in a pod.",
    ], teardown_step="uninstall"),
]

# ===================================================================================================== 02
NB02: list[Cell] = [
    ("markdown", """# 02 · Disaggregated serving on one node (15 min)

**Goal:** run prefill and decode as two separate workers behind one frontend, and prove from the logs that the
frontend routes every request prefill → decode and that NIXL (the library that moves the KV cache) is active.

By the end you can:
- read the single-node graph and say what each of its parts becomes (pods on eks, processes on local);
- deploy it and wait for it, with progress;
- read the frontend log for the **prefill router** and the worker logs for the **NIXL backend**;
- send a streamed completion and read its time to first token (TTFT) and inter-token latency (ITL);
- move real bytes between two NIXL agents over **UCX** and check them;
- show that `NIXL_BACKEND=LIBFABRIC` changes nothing (drill).

| `TARGET` | what this notebook does |
|---|---|
| `eks` | renders, validates and applies the single-node DGD, waits (TRT-LLM's JIT takes 15-20 min on P5), diagnoses the worker logs, port-forwards the frontend and sends a completion |
| `local` | runs the same DGD's services as local processes (the lab's Dynamo frontend and two workers registered in etcd), then runs a NIXL UCX pair that moves and verifies real bytes |"""),
    ("code", "from workshop_lib.lessons import dgd, oddities, predict, steps\n"
             "from workshop_lib.sections import common, troubleshoot\n"
             "from workshop_lib.sections import s02_single_node as s02\n"
             "from workshop_lib.widgets import parameter_form"),
    *params_cell('PROMPT = "Explain in one sentence why prefill and decode run on separate GPUs."\n'
                 'MAX_TOKENS = 32\n'
                 'NIXL_SIZES = "4K,1M"             # local: block sizes of the UCX pair\n'
                 'NIXL_ITERS = 5\n'
                 'FRONTEND_URL = None              # eks: use this URL instead of a port-forward (e.g. an ingress)',
                 ["PROMPT", "MAX_TOKENS", "NIXL_SIZES", "NIXL_ITERS", "FRONTEND_URL"]),
    start_cell("02", "s02"),
    ("markdown", """## Step 1 · The graph, then the deployment

On one node the KV cache moves between two GPUs of the same host, so the graph uses NIXL's default **UCX** backend
(it picks NVLink there); LIBFABRIC is notebook 03's lesson. Here is the graph as rendered, and the command an eks
attendee would type to apply it:"""),
    ("code", "view = dgd.dgd_view(ctx.cfg, \"single-node\")\nview"),
    ("code", "print(dgd.command_block(\"deploy\", ctx.cfg, view.name, view.path))\n"
             "print(dgd.command_block(\"wait\", ctx.cfg, view.name))"),
    ("markdown", """On eks this is one `DynamoGraphDeployment` with three services on one node. The wait watches the DGD and
its pods and reports problems as they happen. **With TRT-LLM the first start compiles kernels for 15-20 minutes on
P5**: the progress bar keeps moving; do not delete the pod.

On local the same three roles run as processes started from the services' own commands (`python -m dynamo.frontend`,
and the workers with `--is-prefill-worker` / `--is-decode-worker`), registering in the lab's etcd."""),
    ("code", "s02.deploy(ctx)"),
    ("markdown", """### What became of it

On eks the operator turned each service into a pod (and the frontend into a Service too). On local each service is
a process; the command line below is read from the running process itself. The engine line says whether the
workers are real vLLM or Dynamo's mocker (a lighter stand-in for small machines, always labelled)."""),
    ("code", "print(dgd.command_block(\"pods\", ctx.cfg, view.name))\nsteps.became_of_it(ctx.cfg)"),
    ("markdown", "On local, every place where the lab's processes differ from the DGD, and why (image, model, ports, "
                 "engine), then what the lab cannot honour on one machine:"),
    ("code", "steps.substitutions(ctx.cfg)"),
    ("code", "print(oddities.engine_note(steps.engine_in_use(ctx.cfg)))"),
    ("markdown", """### Who registered

Workers announce themselves so the frontend can find them: on local as keys in etcd (one per worker endpoint and
model card), on eks through the operator's discovery (Kubernetes endpoint slices by default)."""),
    ("code", "print(dgd.command_block(\"discovery\", ctx.cfg, view.name))\nsteps.registrations(ctx.cfg)"),
    ("markdown", """## Step 2 · Did the frontend find a prefill worker?

When the frontend discovers a worker registered as *prefill* it activates its **prefill router**: from then on every
request goes to a prefill worker first, and the decode worker receives the KV cache instead of recomputing it.
The log diagnosis below reads the frontend's and workers' logs and shows the evidence line for each finding."""),
    ("code", "print(dgd.command_block(\"logs\", ctx.cfg, view.name))\nrouter = s02.router(ctx)\nrouter"),
    ("markdown", """## Step 3 · A streamed completion

A chat completion through the frontend's OpenAI-compatible API, streamed token by token. TTFT covers routing,
prefill and the KV hand-off; ITL is the decode worker's pace.

**Predict, then run:** how many milliseconds until the first token? Write a number in `my_ttft_ms_guess`."""),
    ("code", "my_ttft_ms_guess = None  # your prediction: milliseconds"),
    ("code", "print(dgd.command_block(\"port-forward\", ctx.cfg, view.name))\n"
             "reply = s02.completion(ctx, PROMPT, max_tokens=MAX_TOKENS)\nreply"),
    ("code", "predict.ask(\"02\", my_ttft_ms_guess)"),
    ("markdown", "On local, read the reply's words with this in mind:"),
    ("code", "print(oddities.reply_note(ctx.cfg.target, steps.engine_in_use(ctx.cfg)))"),
    ("markdown", """## Step 4 · NIXL: is it really moving the KV cache?

On eks the worker logs must show the NIXL agent starting and the backend you asked for being instantiated
(`Backend UCX was instantiated` here, `Backend LIBFABRIC was instantiated` in notebook 03, or
`NixlTransferAgent ... using NIXL backend: ...` for TRT-LLM). On local two NIXL 0.9.0 agents in two processes
exchange metadata, then one reads the other's registered memory over **UCX**; the bytes are checked on arrival.
Inside one node UCX uses the fastest path it finds (here a kernel memory copy; between two H100s it picks NVLink via
`cuda_ipc`). Across nodes is where the backend choice matters: notebook 03."""),
    ("code", "nixl = s02.nixl(ctx)\nnixl"),
    ("markdown", """### Drill · ask for LIBFABRIC the wrong way (local, a few seconds)

Many guides set `NIXL_BACKEND=LIBFABRIC` in the worker's environment. The drill starts a NIXL agent exactly as
vLLM's connector does when `kv_connector_extra_config` names no backends, with `NIXL_BACKEND=LIBFABRIC` set, and
checks which backend its log says was instantiated. **Predict first:** UCX or LIBFABRIC?"""),
    ("code", "print(steps.drill(ctx.cfg, \"backend_env\", ctx.work_dir))"),
    ("markdown", "## Verification"),
    ("code", "checks = common.record_checks(\"single_node\", s02.verify(ctx))\nchecks"),
    *closing("02", "s02", [
        "Disaggregation splits a request: a prefill worker builds the KV cache, a decode worker continues from it.",
        "One DGD becomes pods on eks and processes on local; the workers register (etcd / discovery) and the frontend finds them.",
        "The frontend's prefill router is what makes the split happen; its log line is the proof.",
        "NIXL moves the KV cache; the worker log names the backend that was actually instantiated (not the one you "
        "asked for): NIXL_BACKEND is read by nothing.",
        "TTFT includes the KV hand-off, so a slow transfer shows up first as a slow first token.",
    ]),
]

# ===================================================================================================== 03
NB03: list[Cell] = [
    ("markdown", """# 03 · Cross-node disaggregation over EFA (20 min)

**Goal:** prefill on one P5 node, decode on another, the KV cache moving between them through NIXL's **LIBFABRIC**
backend over **EFA** RDMA, and the proof of it from both sides' logs.

By the end you can:
- place prefill and decode on two nodes in one availability zone, with 128Gi and the node's EFA devices per worker;
- compare your logs with a healthy P5 run, line by line, and say why each threshold is what it is;
- recognise the **silent TCP fallback** (`Discovered 1 socket devices (TCP fallback)`, provider `sockets`/`tcp`);
- put together a worker's memory budget, and say what it explains of the 64Gi OOM and what it does not;
- catch a corrupted KV transfer with an integrity check (drill).

| `TARGET` | what this notebook does |
|---|---|
| `eks` | renders, validates and applies the cross-node DGD, waits, diagnoses both workers' logs, detects and explains OOMKilled |
| `local` | runs the cross-node graph's real prefill and decode workers in two network namespaces on a bridge (two "nodes", the real engine, as root; else a named loopback fallback) and checks one completion's KV bytes on both veths; runs two NIXL LIBFABRIC agents the same way, diagnoses their logs, and measures what the LIBFABRIC backend costs in memory |"""),
    ("code", "from workshop_lib.lessons import dgd, efa_reference, memory, predict, steps\n"
             "from workshop_lib.sections import common, troubleshoot\n"
             "from workshop_lib.sections import s03_cross_node as s03\n"
             "from workshop_lib.widgets import parameter_form"),
    *params_cell('WORKER_MEMORY = "128Gi"         # eks: 64Gi is OOMKilled at LIBFABRIC init on p5.48xlarge\n'
                 'NIXL_SIZES = "4K,1M"             # local: block sizes of the LIBFABRIC pair\n'
                 'NIXL_ITERS = 5\n'
                 'NETNS = None                     # local: True for two network namespaces (root); None: when root',
                 ["WORKER_MEMORY", "NIXL_SIZES", "NIXL_ITERS", "NETNS"]),
    start_cell("03", "s03"),
    ("markdown", """## Step 1 · Two nodes

On eks the cross-node graph pins prefill and decode to different nodes (`PREFILL_NODE`/`DECODE_NODE`, or
anti-affinity) in one availability zone (EFA does not cross AZs), gives each worker 128Gi, the node's EFA devices,
`privileged: true` (needed to register GPU memory with EFA) and `FI_PROVIDER=efa`, and selects LIBFABRIC in the
framework's own way (vLLM: `kv_connector_extra_config.backends`; TRT-LLM: `TRTLLM_NIXL_KVCACHE_BACKEND`). The rows
below are the worker parts that make it cross-node and EFA:"""),
    ("code", "view = dgd.dgd_view(ctx.cfg, \"cross-node\")\n"
             "view.parts[view.parts.service == \"PrefillWorker\"]"),
    ("markdown", """On local the two "nodes" are two network namespaces, each with one virtual Ethernet link: the graph's prefill and
decode workers run one in each (the KV cache of a completion must cross both links), and so do the two agents of a
NIXL LIBFABRIC pair, where one reads the other's memory. No EFA exists here, so libfabric must fall back to TCP: watch
for it below.

On eks, a freshly deployed graph has not connected its workers yet: vLLM's NixlConnector opens the NIXL connection to
the prefill worker at the first request whose KV cache it pulls. So once the graph is Ready the deploy step sends one
completion and then a small concurrent batch through the graph's frontend (a port-forward), and only then reads the
logs; the verification shows how many of those requests were served."""),
    ("code", "print(dgd.command_block(\"deploy\", ctx.cfg, view.name, view.path))\ns03.deploy(ctx)"),
    ("markdown", """## Step 2 · What the logs say, side by side

**Predict, then run:** which libfabric provider will the local pair end up on: `efa`, `tcp` or `sockets`?"""),
    ("code", "my_provider_guess = None  # your prediction: \"efa\", \"tcp\" or \"sockets\""),
    ("markdown", """The diagnosis reads each side's log and reports the NIXL backend, the libfabric provider, the EFA devices
found, the data rails, the handshakes, and any error signature, each with its evidence line."""),
    ("code", "print(dgd.command_block(\"logs\", ctx.cfg, view.name))\nsides = s03.diagnose(ctx)\nsides"),
    ("code", "predict.ask(\"03\", my_provider_guess)"),
    ("code", "s03.cross_checks(ctx)"),
    ("markdown", """### A healthy P5 run, to compare with

The local lab cannot show EFA, so here is what healthy P5 logs say, from public sources (each row names its source
and whether it is a raw capture or a line a guide quotes as the expected output). Next: this run's evidence for the
same findings beside them."""),
    ("code", "efa_reference.healthy_lines()"),
    ("code", "efa_reference.side_by_side(steps.evidence_of(ctx.state.get(\"sides\")))"),
    ("markdown", """Why the checks expect what they expect, for the instance type and EFA count in use (the `kind` column
says whether a number comes from the source code, arithmetic, or an observed run):"""),
    ("code", "efa_reference.thresholds(ctx.cfg.instance_type, ctx.cfg.efa_per_worker, ctx.cfg.gpus_per_worker)"),
    ("markdown", """### The verdict

`tcp-fallback` means NIXL asked libfabric for an RDMA-capable fabric, found no EFA device, and quietly used TCP
sockets. Everything still *works*, which is why it is dangerous: on a P5 deployment this is the signature of TTFT
around 100 s instead of milliseconds. **A P5 deployment must never show it.** On the local lab it is expected, and
it is exactly the line to look for in your own worker logs."""),
    ("code", "verdict = s03.verdict(ctx)\nprint(verdict)"),
    ("markdown", """## Step 3 · Memory: a worker's budget

The seed workshop's workers were **OOMKilled at 64Gi** (exit 137) during NIXL LIBFABRIC init on P5 and ran at 128Gi.
Part of the story is the rails: NIXL 0.9.0's LIBFABRIC backend opens one **data rail per EFA device** plus one
**control rail**, and each rail registers a control pool of 4096 × 8 KiB = 32 MiB of host memory. GPU memory
(the KV cache) is registered only on the GPU's own EFA devices (4 per GPU on P5), so the other rails of a one-GPU
worker cost memory and carry nothing. The table computes the pools from the rails in *this* run's log, and for each
instance type (arithmetic from the NIXL source):"""),
    ("code", "memory_rails = s03.rail_memory(ctx)\nmemory_rails"),
    ("markdown", """That is about 1 GiB for 33 rails: far too little to explain an OOM at 64Gi on its own. The budget below
lists every term a worker pays. On local it **measures** what the lab can: the peak resident memory of the NIXL
pair's agents with UCX and with LIBFABRIC (the difference is what LIBFABRIC's rails add here, next to the
arithmetic for the same rails) and the lab's decode worker. The other terms are **asserted**, with their basis."""),
    ("code", "budget = steps.memory_budget(ctx.cfg, ctx.work_dir)\nbudget"),
    ("code", "print(memory.shortfall(budget))"),
    ("code", "print(dgd.command_block(\"oom\", ctx.cfg, view.name))\ns03.oom_check(ctx)"),
    ("markdown", """### Drills · break it (local, a few seconds each)

1. **Corrupt the KV path.** The LIBFABRIC pair with 8 descriptors per request on the tcp provider: does every block
   arrive intact? The pair checks a checksum per block; the check below says whether it caught a corruption.
2. **Co-locate what should be apart.** Pin prefill and decode to one node in the cross-node graph."""),
    ("code", "print(steps.drill(ctx.cfg, \"corrupt_kv\", ctx.work_dir))"),
    ("code", "print(steps.drill(ctx.cfg, \"colocate\", ctx.work_dir))"),
    ("markdown", "## Verification"),
    ("code", "checks = common.record_checks(\"cross_node\", s03.verify(ctx))\nchecks"),
    *closing("03", "s03", [
        "Cross-node KV transfer is where the backend matters: LIBFABRIC on provider efa uses RDMA; anything else is TCP.",
        "The proof is in both sides' logs: the backend instantiated, provider efa, EFA devices found, handshakes on each "
        "side; compare them with a healthy run's lines.",
        "`Discovered ... socket devices (TCP fallback)` is the silent fallback: it works, slowly, and must never appear on P5.",
        "Each EFA device becomes a rail with a 32 MiB control pool: about 1 GiB per agent on P5. That alone does not "
        "explain a 64Gi OOM; the rest of the budget (provider buffers, /dev/shm, the engine, model loading) must be "
        "measured on the pod (memory.peak).",
        "A transfer that reports success can still deliver wrong bytes: verify end to end.",
    ]),
]

# ===================================================================================================== 04
NB04: list[Cell] = [
    ("markdown", """# 04 · Performance: UCX vs LIBFABRIC (10 min)

**Goal:** measure what the backend choice does to serving latency and to raw KV-transfer bandwidth, and read the
numbers honestly.

By the end you can:
- run a serving sweep (TTFT, ITL and throughput at increasing concurrency) against a deployment;
- run a KV-transfer sweep (bandwidth vs block size) for UCX and LIBFABRIC;
- compare with the published P5 figures, and say why the UCX baseline on EFA is labelled **"UCX (TCP)"**;
- reason about multi-rail: rails vs EFA devices, and memory.

| `TARGET` | what this notebook does |
|---|---|
| `eks` | sweeps the UCX and the LIBFABRIC cross-node graphs at concurrency 1, 5, 10, 20 (ISL 512 / OSL 128), then runs the nixlbench pair; in class mode (`UCX_URL`, `LIBFABRIC_URL`) it only sweeps the instructor's graphs |
| `local` | sweeps the lab's frontend with a few small requests, runs the NIXL pair for UCX and LIBFABRIC in DRAM over TCP between two network namespaces |

An appendix at the end shows what NIXL does on real GPUs (a recorded 2x H100 run, or this machine's GPUs)."""),
    ("code", "from workshop_lib import plots\n"
             "from workshop_lib.lessons import dgd, predict, steps, timing\n"
             "from workshop_lib.sections import common, s04_vram, troubleshoot\n"
             "from workshop_lib.sections import s04_performance as s04\n"
             "from workshop_lib.widgets import parameter_form"),
    *params_cell('CONCURRENCY = None               # None: [1, 5, 10, 20] on eks, [1, 2, 4] on local\n'
                 'REQUESTS = None                  # requests per concurrency; None: 100 on eks, 8 on local\n'
                 'ISL = None                       # None: 512 on eks, 64 on local\n'
                 'OSL = None                       # None: 128 on eks, 16 on local\n'
                 'NIXL_SIZES = None                # None: 4K..64M on eks, "4K,64K,1M" on local\n'
                 'NIXL_ITERS = None                # None: 100 on eks, 20 on local\n'
                 'UCX_URL = None                   # class mode (eks): the instructor\'s UCX frontend URL\n'
                 'LIBFABRIC_URL = None             # class mode (eks): the instructor\'s LIBFABRIC frontend URL\n'
                 'VRAM_SIZES = None                # appendix, only when this kernel sees GPUs: None: "1M,16M,64M"',
                 ["CONCURRENCY", "REQUESTS", "ISL", "OSL", "NIXL_SIZES", "NIXL_ITERS", "UCX_URL", "LIBFABRIC_URL",
                  "VRAM_SIZES"]),
    start_cell("04", "s04"),
    ("markdown", """## Step 1 · Serving sweep

Each concurrency level sends a fixed number of streamed requests and records TTFT, ITL and throughput. On eks it runs
once against the UCX deployment and once against the LIBFABRIC one. On local it runs against the lab as it stands:
after notebook 03 (as root, real engine) the cross-node graph's workers in two network namespaces, else the
single-node graph over loopback; the run's label says which graph and network. Either way the workers run on a CPU,
so the sweep shows how the architecture behaves under load, not a backend comparison."""),
    ("markdown", """**On eks: class mode or one graph at a time.** In a class the instructor deploys the UCX and LIBFABRIC
graphs before the session (on four nodes) and attendees set `UCX_URL` and `LIBFABRIC_URL` to their frontends: the
sweep then deploys nothing and fits the 10-minute slot. Self-paced, each cross-node worker asks for its node's EFA
devices (and 128Gi), so the UCX twin (`vllm-xnode-ucx`) and notebook 03's LIBFABRIC graph (`vllm-xnode-libfabric`)
cannot run side by side on two nodes: the sweep deletes the LIBFABRIC graph, deploys the UCX twin (minutes on P5),
sweeps it, deletes it, then deploys the LIBFABRIC graph again and sweeps it. The plan below changes nothing yet."""),
    ("code", "print(timing.class_mode(ctx.cfg.ucx_url, ctx.cfg.libfabric_url, ctx.cfg.target))\ns04.deploy_plan(ctx)"),
    ("code", "print(dgd.command_block(\"port-forward\", ctx.cfg))\nserving = s04.serving_sweep(ctx)\nserving"),
    ("markdown", "TTFT is the time to the first streamed token (it includes prefill and, disaggregated, the KV "
                 "transfer); ITL is the gap between later tokens (decode only). p50 is the median request."),
    ("code", "plots.show(s04.serving_plot(ctx))"),
    ("code", "plots.show(s04.throughput_plot(ctx))"),
    ("markdown", """### Where the first token's time goes

With the real engine on the lab, each request's TTFT splits into the prefill worker computing the prompt's KV, NIXL
moving it to the decode worker, the decode worker's first step, and the rest (frontend, routing, the two hops),
read from the workers' own metrics before and after each request. The cell measures the running lab's backend and
says why when it cannot (the mocker moves no KV bytes). To compare both backends, change the call to
`steps.ttft_split(ctx.cfg, backends=("UCX", "LIBFABRIC"))`: it restarts the lab once per backend (minutes)."""),
    ("code", "split = steps.ttft_split(ctx.cfg)\nsplit"),
    ("code", "steps.split_plot(split, ctx.cfg)"),
    ("markdown", """## Step 2 · KV-transfer sweep

Bandwidth of one NIXL transfer by block size, for both backends. On eks: nixlbench between the two P5 nodes, GPU
memory to GPU memory. On local: the NIXL pair in two network namespaces joined by a veth pair (two "nodes"; loopback
when not root), DRAM to DRAM. Between namespaces UCX can only use TCP, and LIBFABRIC finds no EFA and takes its
sockets/tcp provider, so both lines are TCP here: compare their shapes, not their values with a P5. On local the plot
puts the published P5 points on their own panel, never on the same axis as this machine's.

**Predict, then run:** which block size will move the most GB/s: 4K, 64K or 1M?"""),
    ("code", "my_best_block_guess = None  # your prediction: \"4K\", \"64K\" or \"1M\""),
    ("code", "transfer = s04.transfer_sweep(ctx)\ntransfer"),
    ("code", "predict.ask(\"04\", my_best_block_guess, transfer=ctx.state.get(\"transfer\"))"),
    ("code", "plots.show(s04.transfer_plot(ctx))"),
    ("markdown", """## Step 3 · Against the published figures

The seed workshop measured TTFT with UCX and with LIBFABRIC on two p5.48xlarge (TRT-LLM 1.3.0rc1, ISL 512 / OSL 128,
one EFA rail). On EFA without GPUDirect UCX falls back to TCP, and UCX over RDMA measured the same, so its column is
**"UCX (TCP)"**. `ttft_speedup` is UCX (TCP) TTFT divided by LIBFABRIC TTFT: 32 means LIBFABRIC's first token came 32
times sooner. Published rows are reference; on eks this run's rows follow them, labelled "this run"."""),
    ("code", "s04.speedup_table(ctx)"),
    ("markdown", "Other published numbers worth knowing, with their sources:"),
    ("code", "s04.published_figures()"),
    ("markdown", """## Step 4 · Multi-rail

A P5 has 32 EFA devices; NIXL 0.9.0's LIBFABRIC backend makes one data rail per device it is given, striping large
transfers across them, but registers a GPU's memory only on that GPU's own EFA devices (4 per GPU on P5). More
rails mean more bandwidth for large blocks *and* more registered memory per agent (the table below). To give a
worker fewer EFA devices, lower the pod's `vpc.amazonaws.com/efa` count (or set `FI_EFA_IFACE`); `FI_EFA_DEV_LIST`
and `NIXL_LIBFABRIC_MAX_RAILS` are read by nothing in the pinned stack."""),
    ("markdown", "Registered memory per agent = (data rails + 1 control rail) x 4096 buffers x 8 KiB (NIXL 0.9.0 "
                 "source); a node runs one agent per GPU worker. One rail's share is the line rate divided by the "
                 "EFA devices: a single-rail run can never exceed it."),
    ("code", "s04.rails_table(ctx)"),
    ("markdown", "## Verification"),
    ("code", "checks = common.record_checks(\"performance\", s04.verify(ctx))\nchecks"),
    ("markdown", """## Appendix · What NIXL does on real GPUs (VRAM)

KV caches live in GPU memory. When this kernel sees GPUs (torch with CUDA), the cell below runs the NIXL pair GPU to
GPU here, with small sizes ("this run (VRAM)"). Otherwise it shows a run recorded on two H100s of one host,
labelled **"recorded on 2x H100 (VRAM)"**, beside this run's **"this run (DRAM)"** rows: a different machine, a
different memory and a different link (NVLink inside one host, not EFA between nodes), so read them side by side,
never as one series. `pct_of_peer_copy` compares NIXL with a plain GPU-to-GPU copy of the same bytes in the same
run.

The rows **"recorded on 1x H100, one GPU (VRAM)"** come from a machine with a single card: both agents on the same
GPU, as a prefill and a decode worker sharing one GPU would be. Read their `path` column before the numbers: there
NIXL 0.9.0's UCX sent WRITE through `cuda_ipc` but served READ (the direction vLLM's decode worker pulls the KV cache
in) by software emulation over TCP, orders of magnitude slower, with every byte still correct. The transport a log
names matters more than the backend's name."""),
    ("code", "s04.reference_results(ctx)"),
    ("markdown", "The same recorded run against what the two H100s do without NIXL, all in GB/s: a torch peer copy, "
                 "a copy-engine pull in one process, and a CUDA IPC pull between two processes (the path UCX "
                 "`cuda_ipc` takes). `best mode` is the best of one request at a time, four in flight, or 16 "
                 "descriptors per request."),
    ("code", "s04_vram.hardware_table()"),
    ("code", "plots.show(s04_vram.vram_plot(ctx))"),
    ("markdown", """**How to read it.** Inside one host UCX moves the bytes with its `cuda_ipc` transport: one copy over
NVLink, issued by the receiving GPU. In the recorded run NIXL's UCX READ reached about 60% of what a plain torch
peer copy achieved at 64 MiB (207-213 GB/s against ~357 GB/s), and 55-64% at 256 MiB. The link was not the limit:
two processes sharing the buffer through a CUDA IPC handle and issuing one copy (the path `cuda_ipc` takes) moved
386-395 GB/s. Keeping four requests in flight did not help (181-193 GB/s at 64 MiB), and 16 descriptors per request
was slower (123 GB/s), since each descriptor becomes its own copy. So the gap sits in the software between posting a
transfer and seeing it complete, not in NVLink. Across P5 nodes the path is EFA instead (400 GB/s line rate per
instance; the published nixlbench LIBFABRIC peak is about 47 GB/s at 64 MiB blocks)."""),
    *closing("04", "s04", [
        "Serving latency is where the backend shows: TTFT carries the KV transfer, ITL mostly does not.",
        "On EFA, UCX without GPUDirect is TCP: compare LIBFABRIC against 'UCX (TCP)', and say so.",
        "Bandwidth grows with block size; small blocks are latency-bound on any transport.",
        "Rails trade memory for bandwidth; GPU memory uses only the GPU's own EFA devices, so give a worker what it uses.",
        "Published points and this machine's points are different experiments: keep them on separate axes.",
    ]),
]

NOTEBOOKS: dict[str, list[Cell]] = {
    "01-cluster-setup.ipynb": NB01,
    "02-single-node-disagg.ipynb": NB02,
    "03-cross-node-efa.ipynb": NB03,
    "04-performance.ipynb": NB04,
}


def build(cells: list[Cell]) -> nbformat.NotebookNode:
    """A notebook (nbformat 4, Python 3 kernel, no outputs) from ``cells``."""
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(cells):
        kind, src = cell[0], cell[1]
        tags = cell[2] if len(cell) > 2 else []  # type: ignore[misc]
        c = new_markdown_cell(src) if kind == "markdown" else new_code_cell(src)
        c["id"] = f"c{i:02d}"
        if tags:
            c.metadata["tags"] = list(tags)
        nb.cells.append(c)
    return nb


def render_all() -> dict[str, str]:
    """File name -> notebook JSON text."""
    return {name: nbformat.writes(build(cells)) + "\n" for name, cells in NOTEBOOKS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a committed notebook differs from this file")
    args = ap.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale notebooks: {', '.join(stale)}; run python notebooks/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
