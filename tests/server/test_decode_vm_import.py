from __future__ import annotations

import math

import numpy as np
import pytest

from server.decode_vm_import import decode_vm_import
from server.errors import IngestRejected
from storage.model import is_stale


def test_json_lines_decode_to_columnar_samples():
    body = (
        b'{"metric":{"__name__":"a","job":"x"},"values":[1,2.5],"timestamps":[10,20]}\n'
        b"\n"
        b'{"metric":{"__name__":"b"},"values":[3],"timestamps":[30]}\n'
    )
    batch = decode_vm_import(body)
    assert batch.series == [(("__name__", "a"), ("job", "x")), (("__name__", "b"),)]
    assert batch.sample_series.tolist() == [0, 0, 1]
    assert batch.timestamps.tolist() == [10, 20, 30]
    assert batch.values.tolist() == [1.0, 2.5, 3.0]


def test_special_values_including_stale_markers_are_read():
    body = (
        b'{"metric":{"__name__":"a"},"values":[null,"NaN","Infinity","-Infinity","StaleNaN"],'
        b'"timestamps":[1,2,3,4,5]}'
    )
    v = decode_vm_import(body).values
    assert math.isnan(v[0]) and math.isnan(v[1])
    assert v[2] == math.inf and v[3] == -math.inf
    assert is_stale(v).tolist() == [False, False, False, False, True]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            b'{"metric":{"__name__":"a"},"values":[1],"timestamps":[1]}\n{oops',
            "line 2: invalid JSON",
        ),
        (b'{"metric":{"__name__":"a"},"values":[1,2],"timestamps":[1]}', "2 values but 1"),
        (b'{"metric":{"job":"a"},"values":[1],"timestamps":[1]}', "missing or empty metric name"),
        (b'{"metric":{"__name__":"a"},"values":["x"],"timestamps":[1]}', "invalid sample value"),
        (b'{"metric":{"__name__":"a"},"values":[true],"timestamps":[1]}', "invalid sample value"),
        (b'{"metric":{"__name__":"a"},"values":[1],"timestamps":[1.5]}', "integer milliseconds"),
        (b'{"metric":{"__name__":"a"},"values":[1]}', "missing field"),
        (b'{"metric":{"__name__":1},"values":[1],"timestamps":[1]}', "string value"),
        (b"[1,2]", "JSON object"),
        (b'{"metric":{"__name__":"a"},"values":[1],"timestamps":[1e300]}', "integer"),
        (b'{"metric":{"__name__":"\xff"},"values":[1],"timestamps":[1]}', "UTF-8"),
        (b'{"metric":{"__name__":"a"},"values":[1],"timestamps":[-9e15]}', "integer"),
    ],
)
def test_bad_lines_are_rejected_with_their_line_number(body, fragment):
    with pytest.raises(IngestRejected, match=fragment):
        decode_vm_import(body)


def test_timestamps_beyond_year_9999_are_rejected():
    body = b'{"metric":{"__name__":"a"},"values":[1],"timestamps":[9000000000000000]}'
    with pytest.raises(IngestRejected, match="outside the accepted range"):
        decode_vm_import(body)


def test_empty_body_is_an_empty_batch():
    batch = decode_vm_import(b"\n")
    assert len(batch) == 0 and batch.values.dtype == np.float64
