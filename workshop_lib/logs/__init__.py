"""Log intelligence: NIXL, libfabric, UCX, vLLM, TRT-LLM, Dynamo and nixlbench logs into tables and a verdict.

Example:
    >>> from workshop_lib.logs import parse_lines, diagnose
    >>> diagnose(parse_lines(["2025-11-25 02:39:46 NIXL INFO    _api.py:361 Backend UCX was instantiated"])).verdict
    'ucx'
"""

from workshop_lib.logs.diagnose import CONTRACT_KEYS, VERDICTS, Diagnosis, MultiDiagnosis, diagnose, diagnose_files
from workshop_lib.logs.nixlbench import NIXLBENCH_COLUMNS, NixlbenchResult, parse_nixlbench
from workshop_lib.logs.parser import COLUMNS, Event, ParseResult, classify, parse_file, parse_lines

__all__ = [
    "COLUMNS", "CONTRACT_KEYS", "NIXLBENCH_COLUMNS", "VERDICTS", "Diagnosis", "Event", "MultiDiagnosis",
    "NixlbenchResult", "ParseResult", "classify", "diagnose", "diagnose_files", "parse_file", "parse_lines",
    "parse_nixlbench",
]
