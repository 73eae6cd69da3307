#!/usr/bin/env bash
# Re-record tests/fixtures/real-instr from the real instrumentation libraries
# (needs PyPI; `cargo test` needs only the committed fixtures):
#   tests/real-instr/record-all.sh [VENV_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../fixtures/real-instr"
venv="${1:-${TMPDIR:-/tmp}/tokenhound-real-instr}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r "$here/requirements.txt"
mkdir -p "$out"
for s in otel-openai-v2 openinference-openai openllmetry-openai anthropic-sdk \
         openinference-anthropic openinference-anthropic-and-sdk openllmetry-anthropic; do
    echo "recording $s"
    (cd "$here" && "$venv/bin/python" record.py "$s" "$out/$s.jsonl")
done
{
    echo "Recorded $(date -u +%Y-%m-%d) by tests/real-instr/record-all.sh with:"
    "$venv/bin/pip" freeze | grep -Ei '^(openai|anthropic|opentelemetry|openinference|traceloop)'
} > "$out/VERSIONS.txt"
