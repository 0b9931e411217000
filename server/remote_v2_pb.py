"""Protobuf message classes for remote write 2.0, built at import (no protoc on this machine).

The shape mirrors ``server/remote_v2.proto``. As with ``server/remote_pb.py`` these classes are
the *reference* codec: tests and the ingest benchmark encode payloads with them, and the tests
check the compiled walker (``server/rw2_wire.py``) against them. The server never uses them.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
PACKAGE = "io.prometheus.write.v2"
MESSAGE_NAME = f"{PACKAGE}.Request"
"""The ``proto=`` Content-Type parameter that selects this message."""


def _add(
    msg: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    ftype: int,
    *,
    repeated: bool = False,
    type_name: str = "",
) -> None:
    f = msg.field.add(name=name, number=number, type=ftype)
    f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        f.type_name = f".{PACKAGE}.{type_name}"


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="tidemark/remote_v2.proto", package=PACKAGE, syntax="proto3"
    )
    sample = fd.message_type.add(name="Sample")
    _add(sample, "value", 1, _F.TYPE_DOUBLE)
    _add(sample, "timestamp", 2, _F.TYPE_INT64)
    _add(sample, "start_timestamp", 3, _F.TYPE_INT64)
    exemplar = fd.message_type.add(name="Exemplar")
    _add(exemplar, "labels_refs", 1, _F.TYPE_UINT32, repeated=True)
    _add(exemplar, "value", 2, _F.TYPE_DOUBLE)
    _add(exemplar, "timestamp", 3, _F.TYPE_INT64)
    meta = fd.message_type.add(name="Metadata")
    enum = meta.enum_type.add(name="MetricType")
    for i, name in enumerate(METRIC_TYPE_NAMES):
        enum.value.add(name=name, number=i)
    _add(meta, "type", 1, _F.TYPE_ENUM, type_name="Metadata.MetricType")
    _add(meta, "help_ref", 3, _F.TYPE_UINT32)
    _add(meta, "unit_ref", 4, _F.TYPE_UINT32)
    hist = fd.message_type.add(name="Histogram")
    _add(hist, "count_int", 1, _F.TYPE_UINT64)
    _add(hist, "sum", 3, _F.TYPE_DOUBLE)
    _add(hist, "schema", 4, _F.TYPE_SINT32)
    _add(hist, "timestamp", 15, _F.TYPE_INT64)
    ts = fd.message_type.add(name="TimeSeries")
    _add(ts, "labels_refs", 1, _F.TYPE_UINT32, repeated=True)  # proto3: packed by default
    _add(ts, "samples", 2, _F.TYPE_MESSAGE, repeated=True, type_name="Sample")
    _add(ts, "histograms", 3, _F.TYPE_MESSAGE, repeated=True, type_name="Histogram")
    _add(ts, "exemplars", 4, _F.TYPE_MESSAGE, repeated=True, type_name="Exemplar")
    _add(ts, "metadata", 5, _F.TYPE_MESSAGE, type_name="Metadata")
    _add(ts, "created_timestamp", 6, _F.TYPE_INT64)
    req = fd.message_type.add(name="Request")
    req.reserved_range.add(start=1, end=4)
    _add(req, "symbols", 4, _F.TYPE_STRING, repeated=True)
    _add(req, "timeseries", 5, _F.TYPE_MESSAGE, repeated=True, type_name="TimeSeries")
    return fd


METRIC_TYPE_NAMES = (
    "METRIC_TYPE_UNSPECIFIED",
    "METRIC_TYPE_COUNTER",
    "METRIC_TYPE_GAUGE",
    "METRIC_TYPE_HISTOGRAM",
    "METRIC_TYPE_GAUGEHISTOGRAM",
    "METRIC_TYPE_SUMMARY",
    "METRIC_TYPE_INFO",
    "METRIC_TYPE_STATESET",
)
"""The 2.0 ``Metadata.MetricType`` enum by number; the numbers match 1.0's ``MetricType``."""

_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())


def _cls(name: str) -> type:
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))


Request = _cls("Request")
TimeSeries = _cls("TimeSeries")
Sample = _cls("Sample")
Exemplar = _cls("Exemplar")
Metadata = _cls("Metadata")
Histogram = _cls("Histogram")
