#!/usr/bin/env bash
# Re-record tests/fixtures/real-instr from the real instrumentation libraries
# (needs PyPI; `cargo test` needs only the committed fixtures):
#   tests/real-instr/record-all.sh [VENV_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../fixtures/real-instr"
venv="${1:-${TMPDIR:-/tmp}/tokenhound-real-instr}"
# traceloop-sdk needs a virtualenv of its own (see requirements-traceloop.txt).
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
[ -x "$venv-traceloop/bin/python" ] || python3 -m venv "$venv-traceloop"
[ -x "$venv-frameworks/bin/python" ] || python3 -m venv "$venv-frameworks"
[ -x "$venv-agent-framework/bin/python" ] || python3 -m venv "$venv-agent-framework"
"$venv/bin/pip" install --quiet -r "$here/requirements.txt"
"$venv-traceloop/bin/pip" install --quiet --no-deps -r "$here/requirements-traceloop.txt"
"$venv-frameworks/bin/pip" install --quiet -r "$here/requirements-frameworks.txt"
"$venv-agent-framework/bin/pip" install --quiet -r "$here/requirements-agent-framework.txt"
mkdir -p "$out"
record() {
    echo "recording $2"
    (cd "$here" && "$1/bin/python" -W ignore record.py "$2" "$out/$2.jsonl")
}
for s in otel-openai-v2 openinference-openai anthropic-sdk openinference-anthropic \
         openinference-anthropic-and-sdk; do
    record "$venv" "$s"
done
for s in openllmetry-openai openllmetry-anthropic; do
    record "$venv-traceloop" "$s"
done
for s in langsmith-openai langsmith-anthropic langsmith-langchain langfuse-openai pydantic-ai-openai \
         openinference-langchain openllmetry-langchain openinference-openai-agents; do
    record "$venv-frameworks" "$s"
done
record "$venv-agent-framework" agent-framework-openai
# The Vercel AI SDK records from Node (npm registry needed).
(cd "$here/vercel" && npm install --silent --no-package-lock)
record "$venv" vercel-ai-openai
{
    echo "Recorded $(date -u +%Y-%m-%d) by tests/real-instr/record-all.sh with:"
    "$venv/bin/pip" freeze | grep -Ei '^(openai|anthropic|opentelemetry|openinference)'
    echo "and for the openllmetry-* recordings:"
    "$venv-traceloop/bin/pip" freeze | grep -Ei '^(openai|anthropic|opentelemetry-(sdk|instrumentation-(openai|anthropic))|traceloop)'
    echo "and for the langsmith-*, langfuse-*, pydantic-ai-*, *-langchain and openinference-openai-agents recordings:"
    "$venv-frameworks/bin/pip" freeze | grep -Ei '^(openai|anthropic|opentelemetry-sdk|langsmith|langfuse|pydantic-ai|langchain|openinference-instrumentation-langchain|opentelemetry-instrumentation-langchain|openai-agents|openinference-instrumentation-openai-agents)'
    echo "and for agent-framework-openai:"
    "$venv-agent-framework/bin/pip" freeze | grep -Ei '^(openai|opentelemetry-sdk|agent-framework)'
    echo "and for vercel-ai-openai (Node $(node --version)): tests/real-instr/vercel/package.json"
} > "$out/VERSIONS.txt"
