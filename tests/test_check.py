import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nnlift._check import check_array, check_ids, check_k


@given(
    hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.int64, np.int16]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=st.integers(-1000, 1000),
    )
)
def test_check_array_converts_without_mutation(array):
    before = array.copy()
    out = check_array(array, "x")
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, before.astype(np.float32))
    np.testing.assert_array_equal(array, before)


@given(st.lists(st.one_of(st.integers(-5, 5), st.text(min_size=1, max_size=3)), min_size=1, max_size=10))
def test_check_ids_accepts_unique_homogeneous_or_refuses_clearly(values):
    # The outcome is decided by the input alone: mixed kinds, then duplicates, are refused; else ids come back as given.
    kinds = {type(v) for v in values}
    if kinds == {str} and any("\x00" in v for v in values):
        with pytest.raises(ValueError, match="contains a NUL character"):
            check_ids(values, len(values))
    elif len(kinds) > 1:
        with pytest.raises(TypeError, match="ids must all be ints or all be strings; got a mix"):
            check_ids(values, len(values))
    elif len(set(values)) < len(values):
        with pytest.raises(ValueError, match="ids has duplicates"):
            check_ids(values, len(values))
    else:
        out = check_ids(values, len(values))
        assert out.tolist() == values
        assert out.dtype == (np.int64 if kinds == {int} else out.dtype) and out.dtype.kind in ("i" if kinds == {int} else "U")


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="bank has NaN"):
        check_array([[1.0, float("nan")]], "bank")
    with pytest.raises(ValueError, match="outside float32"):
        check_array([[1e300]], "bank")
    with pytest.raises(ValueError, match="duplicates"):
        check_ids(["a", "b", "a"], 3)
    with pytest.raises(ValueError, match="3 entries but there are 2"):
        check_ids([1, 2, 3], 2)
    with pytest.raises(TypeError, match="mix"):
        check_ids(np.array([1, "a"], dtype=object), 2)
    with pytest.raises(ValueError, match="larger than possible"):
        check_k(5, 4, what="bank rows")
    with pytest.raises(TypeError, match="integer"):
        check_k(True, 4)
