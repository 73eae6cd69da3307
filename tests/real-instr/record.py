"""Record spans from real instrumentation libraries against the fake model.

    python record.py SCENARIO OUT.jsonl

Runs one agent loop (fake_model.SCRIPT: a read of CLAUDE.md, run_tests three
times with two failures, CLAUDE.md again, a filler answer) through the real
OpenAI or Anthropic Python SDK, instrumented as SCENARIO says, and writes the
spans as OTLP JSON lines (what the OTel Collector's file exporter writes) to
OUT.jsonl, and what the fake server served to OUT.served.json.

The tool and agent spans are written by each convention's own library, as an
agent framework on it would: opentelemetry-util-genai (the OTel GenAI
conventions), openinference-instrumentation's OITracer decorators, and
traceloop-sdk's @agent / @tool decorators.
"""

import json
import os
import subprocess
import sys

import fake_model

SESSION = "session-real-instr-1"
SYSTEM = "You fix flaky tests. Read CLAUDE.md before you change anything."
USER = "The unit suite fails now and then. Fix it."
CLAUDE_MD = "# CLAUDE.md\n\n" + "".join(
    f"- Rule {i}: keep changes small and run the unit suite before proposing one.\n" for i in range(28)
)


class ToolError(Exception):
    pass


ATTEMPTS = {"run_tests": 0}


def run_tool(name, args):
    """The tools: CLAUDE.md, and a test run that fails twice."""
    if name == "read_file":
        return CLAUDE_MD
    if name == "run_tests":
        ATTEMPTS["run_tests"] += 1
        if ATTEMPTS["run_tests"] <= 2:
            raise ToolError("connection reset by peer (request 7f3a9c)")
        return "42 passed"
    raise ToolError(f"no tool {name}")


TOOL_SCHEMAS = {
    "read_file": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    "run_tests": {"type": "object", "properties": {"suite": {"type": "string"}}, "required": ["suite"]},
}


def exporter_to(path):
    """A span exporter writing OTLP JSON lines, one ExportTraceServiceRequest per batch."""
    from google.protobuf.json_format import MessageToJson
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLines(SpanExporter):
        def __init__(self):
            self.f = open(path, "w")

        def export(self, spans):
            msg = encode_spans(spans)
            self.f.write(MessageToJson(msg, indent=None) + "\n")
            self.f.flush()
            return SpanExportResult.SUCCESS

        def shutdown(self):
            self.f.close()

    return JsonLines()


def provider(path):
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    tp = TracerProvider(resource=Resource.create({"service.name": "flaky-fixer"}))
    tp.add_span_processor(SimpleSpanProcessor(exporter_to(path)))
    trace.set_tracer_provider(tp)
    return tp


# The agent loops, one per SDK: `tool(name, args, call_id)` runs a tool in the
# scenario's tool span and returns (text, ok).


def openai_loop(base, tool, wrap=lambda c: c):
    import openai

    client = wrap(openai.OpenAI(base_url=base + "/v1", api_key="sk-fake", max_retries=0))
    tools = [{"type": "function", "function": {"name": n, "parameters": s}} for n, s in TOOL_SCHEMAS.items()]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    while True:
        r = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
        m = r.choices[0].message
        if not m.tool_calls:
            return m.content
        messages.append(m.model_dump(exclude_none=True))
        for tc in m.tool_calls:
            text, _ = tool(tc.function.name, json.loads(tc.function.arguments), tc.id)
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": text})


def anthropic_loop(base, tool, wrap=lambda c: c, **client_options):
    import anthropic

    client = wrap(anthropic.Anthropic(base_url=base, api_key="sk-ant-fake", max_retries=0, **client_options))
    tools = [{"name": n, "input_schema": s} for n, s in TOOL_SCHEMAS.items()]
    messages = [{"role": "user", "content": USER}]
    while True:
        r = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=1024, system=SYSTEM, messages=messages, tools=tools
        )
        uses = [c for c in r.content if c.type == "tool_use"]
        if not uses:
            return r.content[0].text
        messages.append({"role": "assistant", "content": [c.model_dump(exclude_none=True) for c in r.content]})
        results = []
        for u in uses:
            text, ok = tool(u.name, u.input, u.id)
            results.append({"type": "tool_result", "tool_use_id": u.id, "content": text, "is_error": not ok})
        messages.append({"role": "user", "content": results})


# The conventions' own libraries for agent and tool spans.

DESCRIPTIONS = {"read_file": "Read a file", "run_tests": "Run a test suite"}


def decorated_tools(decorate):
    """The two tools, each wrapped by a library's tool decorator (`decorate(name)`);
    returns `tool(name, args, call_id)` running one in its span."""

    @decorate("read_file")
    def read_file(path):
        return run_tool("read_file", {"path": path})

    @decorate("run_tests")
    def run_tests(suite):
        return run_tool("run_tests", {"suite": suite})

    fns = {"read_file": read_file, "run_tests": run_tests}

    def tool(name, args, call_id):
        try:
            return fns[name](**args), True
        except ToolError as e:
            return f"error: {e}", False

    return tool


def otel_genai(tp, loop):
    """opentelemetry-util-genai: invoke_agent and execute_tool spans (OTel GenAI)."""
    from opentelemetry.util.genai.handler import TelemetryHandler

    handler = TelemetryHandler(tracer_provider=tp)

    def tool(name, args, call_id):
        try:
            with handler.tool(name) as inv:
                inv.tool_call_id = call_id
                inv.arguments = args
                result = run_tool(name, args)
                inv.tool_result = result
            return result, True
        except ToolError as e:
            return f"error: {e}", False

    try:
        agent = handler.invoke_local_agent(agent_name="flaky-fixer", conversation_id=SESSION)
    except TypeError:
        # util-genai before 1.2 (what openai-v2 2.4b0 runs on): set on the invocation.
        agent = handler.invoke_local_agent(agent_name="flaky-fixer")
        agent.conversation_id = SESSION
    with agent:
        return loop(tool)


def openinference(tp, loop):
    """OpenInference: an AGENT span and TOOL spans from OITracer's decorators, in a session."""
    from openinference.instrumentation import OITracer, TraceConfig, using_session

    tracer = OITracer(tp.get_tracer("flaky-fixer"), config=TraceConfig())
    tool = decorated_tools(lambda name: tracer.tool(name=name, description=DESCRIPTIONS[name]))

    @tracer.agent(name="flaky-fixer")
    def agent(task):
        return loop(tool)

    with using_session(SESSION):
        return agent(USER)


def traceloop(tp_path, loop):
    """OpenLLMetry: traceloop-sdk's @agent and @tool, which also instruments the SDKs."""
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import agent, tool as tl_tool

    Traceloop.init(app_name="flaky-fixer", exporter=exporter_to(tp_path), disable_batch=True, telemetry_enabled=False)
    Traceloop.set_association_properties({"session_id": SESSION})

    tool = decorated_tools(lambda name: tl_tool(name=name))

    @agent(name="flaky-fixer")
    def run():
        return loop(tool)

    return run()


def langsmith(loop, wrap):
    """LangSmith's SDK in OpenTelemetry mode: `wrap` (wrap_openai or
    wrap_anthropic) traces the model calls, @traceable the agent and its tools;
    the session is the thread metadata LangSmith groups conversations by."""
    from langsmith import Client, traceable, tracing_context

    client = Client(tracing_mode="otel", api_key="lsv2-fake")
    tool = decorated_tools(lambda name: traceable(run_type="tool", name=name))

    @traceable(run_type="chain", name="flaky-fixer")
    def agent(task):
        return loop(tool, wrap)

    with tracing_context(client=client, enabled=True, metadata={"session_id": SESSION}):
        result = agent(USER)
    client.flush()
    return result


def typed_tools(decorate, run=None):
    """read_file and run_tests as typed, documented functions (frameworks build
    the tool's schema from the signature and docstring), each wrapped by
    `decorate`; `run` runs a tool (default `run_tool`)."""
    run = run or run_tool

    def read_file(path: str) -> str:
        """Read a file"""
        return run("read_file", {"path": path})

    def run_tests(suite: str) -> str:
        """Run a test suite"""
        return run("run_tests", {"suite": suite})

    return decorate(read_file), decorate(run_tests)


def langchain_tools():
    """The two tools as LangChain tools; `tool(name, args, call_id)` runs one
    through LangChain (its callbacks see the call), a failure handed back."""
    from langchain_core.tools import tool as lc_tool

    read_file, run_tests = typed_tools(lc_tool)
    fns = {"read_file": read_file, "run_tests": run_tests}

    def tool(name, args, call_id):
        try:
            return fns[name].invoke(args), True
        except ToolError as e:
            return f"error: {e}", False

    return tool


def langchain_loop(base, tool):
    """LangChain's ChatOpenAI with the two tools bound, the loop written out."""
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-4o", base_url=base + "/v1", api_key="sk-fake", max_retries=0)
    tools = [{"type": "function", "function": {"name": n, "parameters": s}} for n, s in TOOL_SCHEMAS.items()]
    llm = model.bind_tools(tools)
    messages = [SystemMessage(SYSTEM), HumanMessage(USER)]
    while True:
        m = llm.invoke(messages)
        if not m.tool_calls:
            return m.content
        messages.append(m)
        for tc in m.tool_calls:
            text, _ = tool(tc["name"], tc["args"], tc["id"])
            messages.append(ToolMessage(text, tool_call_id=tc["id"]))


def openai_agents(tp, base):
    """The OpenAI Agents SDK runs the loop on the Chat Completions API of the
    fake model; OpenInference's instrumentation of it writes the spans (the
    SDK's own trace export is off)."""
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool
    from agents import set_tracing_export_api_key
    from openai import AsyncOpenAI
    from openinference.instrumentation import using_session
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    set_tracing_export_api_key("sk-fake")
    OpenAIAgentsInstrumentor().instrument(tracer_provider=tp, exclusive_processor=True)

    read_file, run_tests = typed_tools(function_tool)

    client = AsyncOpenAI(base_url=base + "/v1", api_key="sk-fake", max_retries=0)
    agent = Agent(
        name="flaky-fixer",
        instructions=SYSTEM,
        model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
        model_settings=ModelSettings(parallel_tool_calls=False),
        tools=[read_file, run_tests],
    )
    with using_session(SESSION):
        return Runner.run_sync(agent, USER).final_output


def agent_framework(tp, base):
    """Microsoft Agent Framework's own OTel GenAI spans (sensitive data on, so
    messages are recorded): its ChatAgent runs the loop on the fake model's
    Chat Completions API and calls the two tools; a failed test run goes back
    to the model as the framework's function result."""
    import asyncio

    from agent_framework import Agent, tool
    from agent_framework.observability import enable_instrumentation
    from agent_framework.openai import OpenAIChatCompletionClient

    enable_instrumentation(enable_sensitive_data=True, force=True)

    read_file, run_tests = typed_tools(tool)

    client = OpenAIChatCompletionClient(model="gpt-4o", api_key="sk-fake", base_url=base + "/v1")
    agent = Agent(client=client, name="flaky-fixer", instructions=SYSTEM, tools=[read_file, run_tests])

    async def run():
        session = agent.create_session(session_id=SESSION)
        return (await agent.run(USER, session=session)).text

    return asyncio.run(run())


def pydantic_ai(tp, base):
    """pydantic-ai's own instrumentation (the spans Logfire shows): its Agent
    runs the loop, calling the fake OpenAI model and the two tools; a failed
    test run is handed back to the model with ModelRetry, as its docs advise."""
    from pydantic_ai import Agent, ModelRetry
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=base + "/v1", api_key="sk-fake"))
    agent = Agent(
        model,
        name="flaky-fixer",
        system_prompt=SYSTEM,
        retries=3,
    )
    Agent.instrument_all(InstrumentationSettings(tracer_provider=tp, include_content=True))

    def call(name, args):
        try:
            return run_tool(name, args)
        except ToolError as e:
            raise ModelRetry(str(e)) from e

    typed_tools(agent.tool_plain, run=call)

    return agent.run_sync(USER, metadata={"session_id": SESSION}).output


def langfuse(tp, base):
    """The Langfuse SDK (OpenTelemetry-based since v3): its OpenAI drop-in
    records the generations, @observe the agent and its tools, and
    propagate_attributes the session."""
    from langfuse import Langfuse, observe, propagate_attributes
    from langfuse.openai import openai as lf_openai

    client = Langfuse(public_key="pk-lf-fake", secret_key="sk-lf-fake", host=base, tracer_provider=tp)
    tool = decorated_tools(lambda name: observe(name=name, as_type="tool"))

    @observe(name="flaky-fixer", as_type="agent")
    def agent(task):
        return openai_loop(base, tool, lambda _: lf_openai.OpenAI(base_url=base + "/v1", api_key="sk-fake", max_retries=0))

    with propagate_attributes(session_id=SESSION):
        result = agent(USER)
    client.flush()
    return result


def main(scenario, out):
    # Content capture on, as a team that wants the re-read found would set it.
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
    base, served, server = fake_model.serve()
    oai = lambda tool: openai_loop(base, tool)  # noqa: E731
    no_sdk_spans = {"open_telemetry": False}
    if scenario == "otel-openai-v2":
        tp = provider(out)
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tp)
        otel_genai(tp, oai)
    elif scenario == "openinference-openai":
        tp = provider(out)
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tp)
        openinference(tp, oai)
    elif scenario == "openllmetry-openai":
        traceloop(out, oai)
    elif scenario == "anthropic-sdk":
        # The Anthropic SDK's own spans (on whenever a tracer provider is set).
        tp = provider(out)
        opts = {"open_telemetry": {"traces": {"content_mode": "content"}, "conversation_id": SESSION}}
        otel_genai(tp, lambda tool: anthropic_loop(base, tool, **opts))
    elif scenario == "openinference-anthropic-and-sdk":
        # Two instrumentations of one request: OpenInference's and the SDK's own.
        tp = provider(out)
        from openinference.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tp)
        openinference(tp, lambda tool: anthropic_loop(base, tool))
    elif scenario == "openinference-anthropic":
        tp = provider(out)
        from openinference.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tp)
        openinference(tp, lambda tool: anthropic_loop(base, tool, **no_sdk_spans))
    elif scenario == "openllmetry-anthropic":
        traceloop(out, lambda tool: anthropic_loop(base, tool, **no_sdk_spans))
    elif scenario == "langfuse-openai":
        langfuse(provider(out), base)
    elif scenario == "vercel-ai-openai":
        # The Vercel AI SDK's own spans, from Node (vercel/record.mjs; its
        # packages installed by record-all.sh).
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run(["node", os.path.join(here, "vercel", "record.mjs"), base, out], check=True)
    elif scenario == "openinference-openai-agents":
        openai_agents(provider(out), base)
    elif scenario == "agent-framework-openai":
        agent_framework(provider(out), base)
    elif scenario == "pydantic-ai-openai":
        pydantic_ai(provider(out), base)
    elif scenario == "langsmith-openai":
        provider(out)
        from langsmith.wrappers import wrap_openai

        langsmith(lambda tool, wrap: openai_loop(base, tool, wrap), wrap_openai)
    elif scenario == "langsmith-langchain":
        # LangChain traced by LangSmith (its callbacks), in OpenTelemetry mode only.
        os.environ.update(
            LANGSMITH_TRACING="true",
            LANGSMITH_OTEL_ENABLED="true",
            LANGSMITH_OTEL_ONLY="true",
            LANGSMITH_API_KEY="lsv2-fake",
            LANGSMITH_ENDPOINT=base,
        )
        provider(out)
        langsmith(lambda tool, _: langchain_loop(base, tool), None)
    elif scenario == "openinference-langchain":
        tp = provider(out)
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(tracer_provider=tp)
        openinference(tp, lambda _: langchain_loop(base, langchain_tools()))
    elif scenario == "openllmetry-langchain":
        # OpenLLMetry's LangChain instrumentation on its own (no traceloop-sdk):
        # the session as its association property, set on the agent span.
        tp = provider(out)
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        LangchainInstrumentor().instrument(tracer_provider=tp)
        tracer = tp.get_tracer("flaky-fixer")
        with tracer.start_as_current_span("flaky-fixer.agent") as span:
            span.set_attribute("traceloop.span.kind", "agent")
            span.set_attribute("traceloop.entity.name", "flaky-fixer")
            span.set_attribute("traceloop.association.properties.session_id", SESSION)
            langchain_loop(base, langchain_tools())
    elif scenario == "langsmith-anthropic":
        provider(out)
        from langsmith.wrappers import wrap_anthropic

        langsmith(lambda tool, wrap: anthropic_loop(base, tool, wrap, **no_sdk_spans), wrap_anthropic)
    else:
        sys.exit(f"unknown scenario {scenario}")
    from opentelemetry import trace

    tp = trace.get_tracer_provider()
    if hasattr(tp, "shutdown"):
        tp.force_flush()
        tp.shutdown()
    server.shutdown()
    with open(out.removesuffix(".jsonl") + ".served.json", "w") as f:
        json.dump(served.truth(), f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
