"""Typed rows of a thread: the columnar path agrees with the row-by-row path on any input."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ptx_chain_node.chains.config import InputMapping
from ptx_chain_node.chains.records import typed_rows, typed_rows_by_row

CATEGORIES = ["ops", "dev", "hr"]


def mapping(**overrides: Any) -> InputMapping:
    document: dict[str, Any] = {
        "columns": [
            {"name": "salary", "path": "pay.gross", "type": "integer", "min": 0, "max": 10**6},
            {"name": "dept", "type": "categorical", "categories": CATEGORIES},
            {"name": "hours", "type": "fixed", "scale": 2, "min": -1.5, "max": 80},
            {"name": "age", "type": "integer"},
        ],
        "min_rows": 0,
    }
    document.update(overrides)
    return InputMapping.model_validate(document)


def good_row(rng: random.Random) -> dict[str, Any]:
    hours: Any = rng.choice([rng.randint(-1, 80), round(rng.uniform(-1.5, 80), 2)])
    return {
        "pay": {"gross": rng.randint(0, 10**6)},
        "dept": rng.choice(CATEGORIES),
        "hours": hours,
        "age": rng.randint(-(2**70), 2**70),
    }


def test_good_rows_become_their_values_column_by_column() -> None:
    rng = random.Random(7)
    rows = [good_row(rng) for _ in range(5000)]
    typed, problems = typed_rows(mapping(), rows, "body.data")
    assert problems == [] and typed.rows == 5000 and typed.skipped == 0
    # Plaintext recomputation: each value as it was, a category as its index.
    assert typed.columns["salary"] == [r["pay"]["gross"] for r in rows]
    assert typed.columns["dept"] == [CATEGORIES.index(r["dept"]) for r in rows]
    assert typed.columns["hours"] == [Decimal(repr(r["hours"])) for r in rows]
    assert all(isinstance(h, Decimal) for h in typed.columns["hours"])
    assert typed.columns["age"] == [r["age"] for r in rows]
    assert (typed, problems) == typed_rows_by_row(mapping(), rows, "body.data")


# Values a PDC body may carry in any cell: good ones, and every kind of bad one.
CELLS = st.one_of(
    st.integers(-(10**7), 10**7),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*CATEGORIES, " dev", "DEV", "", "12", " 7 ", "1.25", "x", True, False]),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
)
RECORDS = st.one_of(
    st.fixed_dictionaries(
        {"pay": st.one_of(st.fixed_dictionaries({"gross": CELLS}), st.just({}), CELLS)},
        optional={"dept": CELLS, "hours": CELLS, "age": CELLS},
    ),
    CELLS,
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(RECORDS, max_size=30),
    bad_rows=st.sampled_from(["refuse", "skip"]),
    limits=st.sampled_from([{}, {"min_rows": 3}, {"max_rows": 4}]),
)
def test_columnar_and_row_by_row_agree_on_any_records(
    rows: list[Any], bad_rows: str, limits: dict[str, int]
) -> None:
    config = mapping(bad_rows=bad_rows, **limits)
    assert typed_rows(config, rows, "w") == typed_rows_by_row(config, rows, "w")


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), spoil=st.sampled_from([None, *list(range(12))]))
def test_one_spoilt_cell_among_good_rows_is_found(seed: int, spoil: int | None) -> None:
    rng = random.Random(seed)
    rows: list[Any] = [good_row(rng) for _ in range(50)]
    spoilt = [
        ("pay", {"gross": -1}),
        ("pay", {"gross": 10**6 + 1}),
        ("pay", {"gross": 5.0}),
        ("pay", {"gross": "5"}),
        ("pay", {}),
        ("dept", "Ops"),
        ("dept", " ops "),
        ("hours", 1.005),
        ("hours", 80.01),
        ("hours", float("inf")),
        ("age", True),
        ("age", None),
    ]
    if spoil is not None:
        key, value = spoilt[spoil]
        rows[rng.randrange(len(rows))][key] = value
    for bad in ("refuse", "skip"):
        config = mapping(bad_rows=bad)
        assert typed_rows(config, rows, "w") == typed_rows_by_row(config, rows, "w")


def test_records_under_a_path_and_not_a_list() -> None:
    config = mapping(records="batch.rows")
    rows = [good_row(random.Random(1))]
    typed, problems = typed_rows(config, {"batch": {"rows": rows}}, "w")
    assert problems == [] and typed.rows == 1
    _, problems = typed_rows(config, {"batch": 3}, "w")
    assert [(p.field, p.problem) for p in problems] == [
        ("w.data.batch.rows", "not a list of records")
    ]
