"""Send OTLP JSON lines to an OTLP receiver with the real OpenTelemetry Python
SDK exporters: the first half over OTLP/HTTP (protobuf, gzip), the rest over
OTLP/gRPC (gzip). Each line is one export call, as a batch span processor
makes. Exits 1 if an export failed.

    python3 send.py SPANS.jsonl HTTP_URL GRPC_ADDR
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags


def value(v):
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [value(x) for x in v["arrayValue"].get("values", [])]
    return str(v)


def attrs(kvs):
    return {kv["key"]: value(kv["value"]) for kv in kvs or []}


def spans_of(doc):
    for rs in doc["resourceSpans"]:
        resource = Resource(attrs(rs.get("resource", {}).get("attributes")))
        for ss in rs["scopeSpans"]:
            scope = InstrumentationScope(ss.get("scope", {}).get("name", "generated"))
            for s in ss["spans"]:
                trace_id = int(s["traceId"], 16)
                ctx = SpanContext(trace_id, int(s["spanId"], 16), False, TraceFlags(1))
                parent = None
                if s.get("parentSpanId"):
                    parent = SpanContext(trace_id, int(s["parentSpanId"], 16), False, TraceFlags(1))
                code = s.get("status", {}).get("code", 0)
                status = Status(StatusCode.ERROR, s["status"].get("message")) if code == 2 else Status(StatusCode.UNSET)
                yield ReadableSpan(
                    name=s["name"], context=ctx, parent=parent, resource=resource,
                    attributes=attrs(s.get("attributes")), kind=SpanKind(max(int(s.get("kind", 1)) - 1, 0)),
                    status=status, start_time=int(s["startTimeUnixNano"]), end_time=int(s["endTimeUnixNano"]),
                    instrumentation_scope=scope,
                )


def main(path, http_url, grpc_addr):
    from grpc import Compression as GrpcCompression

    http = HttpExporter(endpoint=http_url, compression=HttpCompression.Gzip)
    grpc = GrpcExporter(endpoint=grpc_addr, insecure=True, compression=GrpcCompression.Gzip)
    lines = open(path).read().splitlines()
    for i, line in enumerate(lines):
        exporter = http if i < len(lines) // 2 else grpc
        if exporter.export(list(spans_of(json.loads(line)))) != SpanExportResult.SUCCESS:
            sys.exit(f"export of line {i + 1} failed")
    http.shutdown()
    grpc.shutdown()
    print(f"sent {len(lines)} batches")


if __name__ == "__main__":
    main(*sys.argv[1:4])
