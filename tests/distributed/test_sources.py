"""Reading arrow tables back into arrays: list columns become rows, and a malformed one is an error, not misaligned rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

pa = pytest.importorskip("pyarrow")
from nnlift.distributed.sources import table_columns  # noqa: E402
from nnlift.errors import InputError  # noqa: E402


@given(st.integers(0, 6), st.integers(1, 5), st.booleans())
def test_list_columns_come_back_as_the_rows_written(rows, width, fixed):
    values = np.arange(rows * width, dtype=np.float32).reshape(rows, width)
    if fixed:
        column = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), width)
    else:
        column = pa.array([list(row) for row in values], type=pa.list_(pa.float32()))
    out = table_columns(pa.table({"embedding": column, "id": pa.array(np.arange(rows))}))
    assert np.array_equal(out["id"], np.arange(rows))
    assert out["embedding"].shape == (rows, width if fixed or rows else 0)
    assert np.array_equal(out["embedding"].reshape(values.shape), values)


@pytest.mark.parametrize(
    "column, message",
    [
        (pa.array([[1.0, 2.0], None, [3.0, 4.0]]), "1 empty \\(null\\) row"),
        (pa.array([[1.0, 2.0], [3.0], [4.0, 5.0]]), "rows of different lengths \\(1..2\\)"),
        # Before: 12 values of 4 rows (one null) reshaped silently into 4 rows of 3.
        (pa.array([[1.0, 2.0, 3.0, 4.0], None, [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0]]), "1 empty \\(null\\) row"),
    ],
)
def test_a_null_or_ragged_list_column_is_refused_by_name(column, message):
    with pytest.raises(InputError, match=f"column .embedding. has {message}"):
        table_columns(pa.table({"embedding": column}))
