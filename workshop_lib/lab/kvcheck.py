"""Did the KV cache arrive intact? Compare the disaggregated lab's output with an aggregated run of the same model.

For fixed prompts, the running lab (prefill worker -> NIXL -> decode worker) answers ``/v1/completions`` with
temperature 0, ``max_tokens`` 8 and the top-3 logprobs per token. The reference is the same vLLM 0.14.1 engine with the
same model, dtype and context length, run aggregated (no KV transfer: one engine prefills and decodes, offline
``vllm.LLM`` in a subprocess) on the same prompt token ids. If the decode worker received the prefill worker's KV
cache intact, its first token (computed from that cache) and every later token and logprob are those of the reference.

Why logprobs and not text: the model's weights are random, so greedy text repeats one token and rarely changes even
with a wrong KV cache; the logprob of the chosen token and the top alternatives move with any change of the cache.
Measured (``../shared/reference/LOCAL-LAB.md``, "KV integrity"): UCX disaggregated equals aggregated bit for bit (max
difference 0.0); LIBFABRIC on a machine without EFA (NIXL 0.9.0, sockets/tcp) changed the first token of every prompt
and logprobs by up to 1.15 while vLLM counted 0 failed transfers.

Tolerance: tokens must be equal; each chosen token's logprob may differ by at most :data:`LOGPROB_TOLERANCE` (0.02).
Both runs use the same CPU kernels on the same bfloat16 weights, so the expected difference is 0.0; the margin only
absorbs a different summation order (batch shapes) at bfloat16's precision (about 3 significant digits), and is 50x
smaller than the corruption measured above.

Example:
    >>> compare([{"tokens": [5, 6], "logprobs": [-1.0, -2.0]}], [{"tokens": [5, 6], "logprobs": [-1.0, -2.0]}])[0]
    'identical'
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from workshop_lib.errors import LabError

PROMPTS = (
    "The prefill worker sends the KV cache to the decode worker over NIXL.",
    "Explain how disaggregated serving splits prefill and decode between two workers.",
    "Measure the time to first token with UCX and with LIBFABRIC at 64 tokens.",
)
MAX_TOKENS = 8
TOP_LOGPROBS = 3
LOGPROB_TOLERANCE = 0.02

_REFERENCE_SCRIPT = r"""
import json, os, sys
if __name__ == "__main__":
    spec = json.load(open(sys.argv[1]))
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    llm = LLM(model=spec["model"], dtype="bfloat16", max_model_len=spec["max_model_len"], enforce_eager=True)
    sp = SamplingParams(temperature=0.0, max_tokens=spec["max_tokens"], logprobs=spec["logprobs"])
    outs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in spec["ids"]], sp)
    res = []
    for o in outs:
        c = o.outputs[0]
        res.append({"tokens": list(c.token_ids),
                    "logprobs": [lp[t].logprob for t, lp in zip(c.token_ids, c.logprobs)],
                    "text": c.text})
    with open(sys.argv[2], "w") as fh:
        json.dump(res, fh)
    sys.stdout.flush()
    os._exit(0)
"""


def prompt_ids(model_dir: Path, prompts: tuple[str, ...] | list[str]) -> list[list[int]]:
    """Token ids of ``prompts`` with the model's own ``tokenizer.json`` (no special tokens added)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    return [tok.encode(p, add_special_tokens=False).ids for p in prompts]


def disaggregated(url: str, model: str, ids: list[list[int]], timeout: float = 120.0) -> list[dict[str, Any]]:
    """The lab's answers through its frontend (``/v1/completions``, prompt given as token ids)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model) / "tokenizer.json"))
    out = []
    for p in ids:
        body = {"model": model, "prompt": p, "max_tokens": MAX_TOKENS, "temperature": 0.0, "logprobs": TOP_LOGPROBS}
        try:
            r = httpx.post(f"{url}/v1/completions", json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise LabError(f"{url}/v1/completions", f"no answer ({exc})", "check `workshop lab status`") from exc
        if r.status_code != 200:
            raise LabError(f"{url}/v1/completions", f"HTTP {r.status_code}: {r.text[:300]}", "read `workshop lab logs`")
        choice = r.json()["choices"][0]
        lp = choice.get("logprobs") or {}
        toks = lp.get("tokens") or []
        ids_ = [tok.token_to_id(t) if tok.token_to_id(t) is not None else -1 for t in toks]
        out.append(
            {
                "tokens": ids_,
                "token_strings": toks,
                "logprobs": [float(x) for x in lp.get("token_logprobs") or []],
                "text": choice.get("text", ""),
                "prompt_tokens": (r.json().get("usage") or {}).get("prompt_tokens"),
            }
        )
    return out


def reference(model_dir: Path, ids: list[list[int]], cache_dir: Path, env: dict[str, str] | None = None,
              timeout: float = 600.0) -> list[dict[str, Any]]:  # fmt: skip
    """The aggregated run (offline vLLM, no KV connector), cached per model digest and prompts."""
    import hashlib

    from workshop_lib.lab.graph import MAX_MODEL_LEN
    from workshop_lib.lab.model import digest

    spec = {"model": str(model_dir), "ids": ids, "max_tokens": MAX_TOKENS, "logprobs": TOP_LOGPROBS,
            "max_model_len": MAX_MODEL_LEN}  # fmt: skip
    key = hashlib.sha256((digest(model_dir) + json.dumps(spec, sort_keys=True)).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"kv-reference-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent) as tmp:
        script, spec_f, out_f = Path(tmp) / "ref.py", Path(tmp) / "spec.json", Path(tmp) / "out.json"
        script.write_text(_REFERENCE_SCRIPT)
        spec_f.write_text(json.dumps(spec))
        log = cache.parent / "kv-reference.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen([sys.executable, str(script), str(spec_f), str(out_f)], stdout=fh,
                                    stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True)  # fmt: skip
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:  # offline vLLM exits leaving its EngineCore child running (2 GB each): end the whole group
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if code is None:
            raise LabError("aggregated reference run", f"offline vLLM did not finish in {timeout:.0f} s",
                           f"read {log}; a busy machine needs a longer timeout")
        if code != 0 or not out_f.exists():
            raise LabError("aggregated reference run", f"offline vLLM exited {code}", f"read {log}")
        data = json.loads(out_f.read_text())
    cache.write_text(json.dumps(data))
    return data


def compare(
    disagg: list[dict[str, Any]], ref: list[dict[str, Any]], tol: float = LOGPROB_TOLERANCE
) -> tuple[str, list]:
    """(``identical`` | ``mismatch``, per-prompt findings). A prompt differs at its first token whose id differs or
    whose logprob is more than ``tol`` away."""
    findings = []
    for i, (d, r) in enumerate(zip(disagg, ref, strict=True)):
        first = None
        max_diff = 0.0
        for j, (td, tr) in enumerate(zip(d["tokens"], r["tokens"], strict=False)):
            diff = (
                abs(d["logprobs"][j] - r["logprobs"][j]) if j < len(d["logprobs"]) and j < len(r["logprobs"]) else 0.0
            )
            max_diff = max(max_diff, diff)
            if first is None and (td != tr or diff > tol):
                first = {"position": j, "disaggregated": {"token": td, "logprob": d["logprobs"][j]},
                         "aggregated": {"token": tr, "logprob": r["logprobs"][j]}}  # fmt: skip
        if first is None and len(d["tokens"]) != len(r["tokens"]):
            first = {"position": min(len(d["tokens"]), len(r["tokens"])), "reason": "different lengths"}
        findings.append({"index": i, "identical": first is None, "first_difference": first,
                         "max_logprob_difference": round(max_diff, 6)})  # fmt: skip
    verdict = "identical" if all(f["identical"] for f in findings) else "mismatch"
    return verdict, findings


def check_kv(lab: Any = None, prompts: tuple[str, ...] | list[str] = PROMPTS) -> dict[str, Any]:
    """Run the integrity check against the running lab (:class:`~workshop_lib.lab.serving.Lab`); returns the report.

    Raises:
        LabError: the lab is not running the real engine, or a run failed.
    """
    from workshop_lib.lab import setup as lab_setup
    from workshop_lib.lab.serving import Lab

    lab = lab or Lab()
    st = lab.status()
    if not st.healthy:
        raise LabError("check-kv", "the lab is not running and healthy", "run `workshop lab up` first")
    if st.engine != "vllm":
        raise LabError("check-kv", f"the running lab's engine is {st.engine}, which moves no KV cache",
                       "run `workshop lab down` then `workshop lab up --engine vllm`")  # fmt: skip
    model = Path(str(st.model))
    ids = prompt_ids(model, list(prompts))
    kv_before = st.kv or {}
    t0 = time.monotonic()
    dis = disaggregated(str(st.frontend_url), str(model), ids)
    kv_after = lab.status().kv or {}
    env = {**__import__("os").environ, **lab_setup.lab_env(), "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_CPU_OMP_THREADS_BIND": "0", "TORCH_COMPILE_DISABLE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TORCHINDUCTOR_CACHE_DIR": str(lab.root / "cache" / "inductor"),
           "VLLM_CACHE_ROOT": str(lab.root / "cache" / "vllm")}  # fmt: skip
    ref = reference(model, ids, lab.root / "cache", env=env)
    verdict, findings = compare(dis, ref)
    bytes_moved = kv_after.get("bytes_transferred", 0.0) - kv_before.get("bytes_transferred", 0.0)
    failed = kv_after.get("failed_transfers", 0.0) - kv_before.get("failed_transfers", 0.0)
    report: dict[str, Any] = {
        "integrity": verdict,
        "engine": st.engine,
        "kv_backend": st.kv_backend,
        "tolerance": {"tokens": "equal", "logprob_abs": LOGPROB_TOLERANCE},
        "kv_bytes_during_check": bytes_moved,
        "failed_transfers_during_check": failed,
        "prompts": [
            {"prompt": p, "prompt_ids": len(i), "disaggregated": d, "aggregated": r, **f}
            for p, i, d, r, f in zip(prompts, ids, dis, ref, findings, strict=True)
        ],
        "seconds": round(time.monotonic() - t0, 1),
    }
    if verdict == "mismatch":
        n = sum(not f["identical"] for f in findings)
        silent = " while vLLM counted 0 failed transfers (a silent corruption)" if not failed else ""
        report["cause"] = (
            f"the decode worker's output differs from the aggregated run on {n} of {len(findings)} prompts{silent}: "
            f"the KV cache delivered over NIXL {st.kv_backend} is not the one the prefill worker computed"
            + (
                " (NIXL 0.9.0 LIBFABRIC without EFA uses the sockets/tcp provider, which writes every descriptor to offset 0 "
                "of the remote region: benchmarks/nixl_vram/LIBFABRIC-MULTIDESC.md)"
                if st.kv_backend == "LIBFABRIC"
                else ""
            )  # fmt: skip
        )
    elif bytes_moved <= 0:
        report["integrity"] = "mismatch"
        report["cause"] = "no KV bytes moved over NIXL during the check: the output was not disaggregated"
    return report
