"""large-tool-results, in Python: tool results so big that every later call
pays for them again. The same query as the Rust example `tokenhound new` writes,
built into a WebAssembly component with componentize-py:

    componentize-py -d ../../wit/v0.5.0 -w plugin componentize app -o large_tool_results_py.wasm
"""

import json
import math

import wit_world
from componentize_py_types import Err
from wit_world.exports import detector
from wit_world.imports import types
from wit_world.imports.batch import SpanColumns
from wit_world.imports.types import Field, ParamType, SpanKind, TextField

NONE = 4294967295


class Strings:
    """The batch's string table: one UTF-8 blob and where each string ends."""

    def __init__(self, batch: SpanColumns):
        self.blob = batch.strings
        self.ends = batch.string_ends

    def __getitem__(self, i: int) -> str:
        start = self.ends[i - 1] if i else 0
        return self.blob[start : self.ends[i]].decode()


class Analyzer(detector.Analyzer):
    def __init__(self, max_tokens: int, bytes_per_token: float):
        self.max_tokens = max_tokens
        self.bytes_per_token = bytes_per_token

    def observe(self, batch: SpanColumns, texts) -> list:
        out = []
        strings = Strings(batch)
        for row, kind in enumerate(batch.kind):
            if kind != SpanKind.TOOL:
                continue
            size = texts.size(row, TextField.TOOL_RESULT)
            if size is None:
                continue
            tokens = math.ceil(size / self.bytes_per_token)
            if tokens <= self.max_tokens:
                continue
            name = batch.tool_name[row]
            tool = strings[name] if name != NONE else "tool"
            span = types.SpanRef(strings[batch.trace[row]], strings[batch.span_id[row]])
            out.append(
                types.Finding(
                    title=f"{tool} returned {tokens} tokens",
                    message=f"{tool} returned {tokens} tokens; everything above {self.max_tokens} is paid again by every later call of the turn.",
                    severity=None,
                    session=strings[batch.session[row]],
                    trace_id=span.trace_id,
                    spans=[span],
                    waste=[types.Charge(span, tokens - self.max_tokens)],
                    waste_kind=types.TokenKind.INPUT,
                    evidence=[("tool", tool), ("result_tokens", str(tokens))],
                    fix="Return a summary or a page of the result, and let the agent ask for more.",
                    group=None,
                    pattern=tool,
                    waste_seconds=0.0,
                    alert=False,
                )
            )
        return out

    def finish(self) -> list:
        return []

    def counters(self) -> list:
        return []

    def save(self):
        # `watch` checkpoints this state so a restart need not replay the files.
        # Nothing is kept across batches here: the parameters are all. A
        # detector that keeps state returns it as bytes (json.dumps(...).encode()),
        # or None to have the files replayed instead.
        return json.dumps({"max_tokens": self.max_tokens, "bytes_per_token": self.bytes_per_token}).encode()


class Detector(wit_world.exports.Detector):
    def describe(self) -> types.Metadata:
        return types.Metadata(
            name="large-tool-results-py",
            version="0.1.0",
            description="Tool results larger than a limit (Python)",
            params=[
                types.Param("max_result_tokens", ParamType.INTEGER, "2000", "largest acceptable tool result"),
                types.Param("bytes_per_token", ParamType.NUMBER, "4.0", "UTF-8 bytes per content token"),
            ],
            needs=[Field.TOOL, Field.TOOL_RESULT],
        )

    def span_kinds(self) -> list[SpanKind]:
        # Tool calls only: spans of the other kinds (most spans of a service
        # are ordinary HTTP and database spans) need not be sent to it.
        return [SpanKind.TOOL]

    def create(self, params: str) -> detector.Analyzer:
        try:
            p = json.loads(params) if params.strip() else {}
        except ValueError as e:
            raise Err(f"parameters are not a JSON object: {e}")
        unknown = set(p) - {"max_result_tokens", "bytes_per_token"}
        if unknown:
            raise Err(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        max_tokens = p.get("max_result_tokens", 2000)
        bpt = p.get("bytes_per_token", 4.0)
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise Err(f"max_result_tokens must be a whole number, got {max_tokens!r}")
        if not isinstance(bpt, (int, float)) or bpt <= 0:
            raise Err(f"bytes_per_token must be a positive number, got {bpt!r}")
        return Analyzer(max_tokens, float(bpt))

    def restore(self, params: str, state: bytes) -> detector.Analyzer:
        try:
            s = json.loads(state)
            return Analyzer(int(s["max_tokens"]), float(s["bytes_per_token"]))
        except (ValueError, KeyError, TypeError) as e:
            raise Err(f"a saved state this version cannot read: {e}")
