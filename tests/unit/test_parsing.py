"""The one size parser/formatter and the one concurrency parser (workshop_lib.parsing)."""

from __future__ import annotations

import pytest

from workshop_lib.errors import ConfigError
from workshop_lib.parsing import GiB, KiB, MiB, format_size, parse_concurrency, parse_size, parse_sizes


def test_sizes_round_trip_in_binary_units() -> None:
    assert [format_size(parse_size(t)) for t in ("4K", "64KiB", "1M", "3G")] == ["4K", "64K", "1M", "3G"]
    assert (KiB, MiB, GiB) == (2**10, 2**20, 2**30)
    assert parse_sizes("4K..16K,1M,4K") == [4096, 8192, 16384, MiB]


@pytest.mark.parametrize(("n", "label"), [(1536, "1536"), (1000, "1000"), (0, "0"), (256 * MiB, "256M")])
def test_format_size_keeps_what_no_unit_divides(n: int, label: str) -> None:
    assert format_size(n) == label


@pytest.mark.parametrize("text", ["4X", "0K", "", "4K,,8K", "3K..8K", "8K..4K"])
def test_bad_sizes_name_the_field(text: str) -> None:
    with pytest.raises(ConfigError, match="^sizes: "):
        parse_sizes(text)


def test_parse_concurrency_and_its_errors_name_the_given_field() -> None:
    assert parse_concurrency(" 1, 5,10 ") == [1, 5, 10]
    with pytest.raises(ConfigError, match="^concurrency: .*not a list of integers"):
        parse_concurrency("1,x")
    with pytest.raises(ConfigError, match=r"concurrency: .*positive.*concurrency=1,5"):
        parse_concurrency("0,2", where="concurrency", example="concurrency=1,5")
    with pytest.raises(ConfigError):
        parse_concurrency("")


def test_one_definition_of_each_helper(repo_root) -> None:
    """One size parser/formatter, one concurrency parser (parsing.py) and one percentile (bench/stats.py)."""
    import re

    homes = {"parse_size": "parsing.py", "parse_sizes": "parsing.py", "format_size": "parsing.py",
             "size_label": "parsing.py", "human_bytes": "parsing.py", "parse_concurrency": "parsing.py", "percentile": "bench/stats.py"}
    defn = re.compile(r"^\s*def (" + "|".join(homes) + r")\(", re.M)
    pkg = repo_root / "workshop_lib"
    where = {(m, str(p.relative_to(pkg))) for p in pkg.rglob("*.py") for m in defn.findall(p.read_text())}
    assert where <= set(homes.items()), f"defined outside their one home: {sorted(where - set(homes.items()))}"


def test_format_size_exact_and_approx() -> None:
    """One size formatter: exact labels for block sizes, fractional ones for a plot's axis ticks."""
    assert [format_size(b) for b in (512, 1536, 4096, 2**20, 64 * 2**20)] == ["512", "1536", "4K", "1M", "64M"]
    assert [format_size(b, approx=True) for b in (512, 1536, 4096, 1.5 * 2**20)] == ["512", "1.5K", "4K", "1.5M"]
