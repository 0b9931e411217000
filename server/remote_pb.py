"""Protobuf message classes for remote write 1.0, built at import (no protoc on this machine).

The shape mirrors ``server/remote.proto``. These classes are the *reference* codec: tests and the
ingest benchmark encode payloads with them, and the tests check the hand-written wire decoder
(``server/rw_wire.py``) against them. The server's hot path never uses them.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _field(
    msg: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    ftype: int,
    *,
    repeated: bool = False,
    type_name: str = "",
) -> None:
    f = msg.field.add()
    f.name = name
    f.number = number
    f.type = ftype
    f.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        f.type_name = type_name


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="tidemark/remote.proto", package="prometheus", syntax="proto3"
    )
    sample = fd.message_type.add(name="Sample")
    _field(sample, "value", 1, _F.TYPE_DOUBLE)
    _field(sample, "timestamp", 2, _F.TYPE_INT64)
    label = fd.message_type.add(name="Label")
    _field(label, "name", 1, _F.TYPE_STRING)
    _field(label, "value", 2, _F.TYPE_STRING)
    ts = fd.message_type.add(name="TimeSeries")
    _field(ts, "labels", 1, _F.TYPE_MESSAGE, repeated=True, type_name=".prometheus.Label")
    _field(ts, "samples", 2, _F.TYPE_MESSAGE, repeated=True, type_name=".prometheus.Sample")
    meta = fd.message_type.add(name="MetricMetadata")
    enum = meta.enum_type.add(name="MetricType")
    for i, name in enumerate(METRIC_TYPES):
        enum.value.add(name=name.upper(), number=i)
    _field(meta, "type", 1, _F.TYPE_ENUM, type_name=".prometheus.MetricMetadata.MetricType")
    _field(meta, "metric_family_name", 2, _F.TYPE_STRING)
    _field(meta, "help", 4, _F.TYPE_STRING)
    _field(meta, "unit", 5, _F.TYPE_STRING)
    wr = fd.message_type.add(name="WriteRequest")
    _field(wr, "timeseries", 1, _F.TYPE_MESSAGE, repeated=True, type_name=".prometheus.TimeSeries")
    _field(
        wr, "metadata", 3, _F.TYPE_MESSAGE, repeated=True, type_name=".prometheus.MetricMetadata"
    )
    return fd


METRIC_TYPES = (
    "unknown",
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
)
"""Remote write's ``MetricType`` enum, indexed by number, spelled as Prometheus' API does."""

_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())


def _cls(name: str) -> type:
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"prometheus.{name}"))


WriteRequest = _cls("WriteRequest")
TimeSeries = _cls("TimeSeries")
Label = _cls("Label")
Sample = _cls("Sample")
MetricMetadataPb = _cls("MetricMetadata")
