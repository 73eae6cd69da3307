//! Bindings of `tokenhound:detector@0.1.0`, kept so components built against it
//! load unchanged (docs/wit-versioning.md). The engine speaks 0.2.0; this module
//! adapts between the two: a batch loses the columns 0.1.0 cannot name, and a
//! 0.1.0 finding gains the 0.2.0 fields with their "not set" values (no pattern,
//! no time waste, not an alert). Frozen with the WIT it binds.

use super::State;
use crate::engine as cur;
use wasmtime::component::Resource;

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
    world: "plugin",
    with: { "tokenhound:detector/host.texts": crate::engine::v0_1_0::TextsV1 },
});

pub use self::exports::tokenhound::detector::detector::Metadata;
use self::tokenhound::detector::types as v1;

/// The package this module binds, as components name it.
pub const PACKAGE: &str = "tokenhound:detector@0.1.0";

/// Marker for 0.1.0's `texts` resource (the data is the store's current batch).
pub struct TextsV1;

impl tokenhound::detector::host::Host for State {}
impl tokenhound::detector::types::Host for State {}

impl tokenhound::detector::host::HostTexts for State {
    fn get(&mut self, _: Resource<TextsV1>, row: u32, field: v1::TextField) -> Option<String> {
        self.texts
            .as_ref()
            .and_then(|t| t.text(row, text_field(field)))
            .map(String::from)
    }
    fn size(&mut self, _: Resource<TextsV1>, row: u32, field: v1::TextField) -> Option<u64> {
        self.texts
            .as_ref()
            .and_then(|t| t.size(row, text_field(field)))
    }
    fn drop(&mut self, r: Resource<TextsV1>) -> wasmtime::Result<()> {
        let _ = self.table.delete(r);
        Ok(())
    }
}

fn text_field(f: v1::TextField) -> cur::TextField {
    match f {
        v1::TextField::Input => cur::TextField::Input,
        v1::TextField::Output => cur::TextField::Output,
        v1::TextField::ToolArguments => cur::TextField::ToolArguments,
        v1::TextField::ToolResult => cur::TextField::ToolResult,
        v1::TextField::ResourceUri => cur::TextField::ResourceUri,
    }
}

/// The batch as 0.1.0 has it: the same rows, without the 0.2.0 columns.
pub fn columns(c: &cur::ColumnsViewV3) -> v1::SpanColumns {
    v1::SpanColumns {
        strings: c.strings.to_vec(),
        session: c.session.to_vec(),
        trace: c.trace.to_vec(),
        span_id: c.span_id.to_vec(),
        parent: c.parent.to_vec(),
        kind: c.kind.iter().map(|&k| span_kind(k)).collect(),
        name: c.name.to_vec(),
        start_ns: c.start_ns.to_vec(),
        end_ns: c.end_ns.to_vec(),
        failed: c.failed.to_vec(),
        agent_name: c.agent_name.to_vec(),
        model: c.model.to_vec(),
        tool_name: c.tool_name.to_vec(),
        tool_server: c.tool_server.to_vec(),
        tool_args_hash: c.tool_args_hash.to_vec(),
        input_tokens: c.input_tokens.to_vec(),
        output_tokens: c.output_tokens.to_vec(),
        cache_read_tokens: c.cache_read_tokens.to_vec(),
        cache_write_tokens: c.cache_write_tokens.to_vec(),
    }
}

fn span_kind(k: cur::SpanKind) -> v1::SpanKind {
    match k {
        cur::SpanKind::Llm => v1::SpanKind::Llm,
        cur::SpanKind::Tool => v1::SpanKind::Tool,
        cur::SpanKind::Agent => v1::SpanKind::Agent,
        cur::SpanKind::Other => v1::SpanKind::Other,
    }
}

fn severity(s: v1::Severity) -> cur::Severity {
    match s {
        v1::Severity::Info => cur::Severity::Info,
        v1::Severity::Low => cur::Severity::Low,
        v1::Severity::Medium => cur::Severity::Medium,
        v1::Severity::High => cur::Severity::High,
        v1::Severity::Critical => cur::Severity::Critical,
    }
}

fn span_ref(r: v1::SpanRef) -> cur::SpanRef {
    cur::SpanRef {
        trace_id: r.trace_id,
        span_id: r.span_id,
    }
}

/// A 0.1.0 finding in the engine's terms.
pub fn finding(f: v1::Finding) -> cur::Finding {
    cur::Finding {
        title: f.title,
        message: f.message,
        severity: f.severity.map(severity),
        session: f.session,
        trace_id: f.trace_id,
        spans: f.spans.into_iter().map(span_ref).collect(),
        waste: f
            .waste
            .into_iter()
            .map(|c| cur::Charge {
                span: span_ref(c.span),
                tokens: c.tokens,
            })
            .collect(),
        waste_kind: match f.waste_kind {
            v1::TokenKind::Input => cur::TokenKind::Input,
            v1::TokenKind::Output => cur::TokenKind::Output,
        },
        evidence: f.evidence,
        fix: f.fix,
        group: f.group,
        pattern: None,
        waste_seconds: 0.0,
        alert: false,
    }
}

pub fn findings(fs: Vec<v1::Finding>) -> Vec<cur::Finding> {
    fs.into_iter().map(finding).collect()
}

pub fn counters(cs: Vec<v1::Counter>) -> Vec<cur::Counter> {
    cs.into_iter()
        .map(|c| cur::Counter {
            name: c.name,
            value: c.value,
        })
        .collect()
}

/// 0.1.0 metadata in the engine's terms.
pub fn metadata(m: Metadata) -> cur::Metadata {
    cur::Metadata {
        name: m.name,
        version: m.version,
        description: m.description,
        params: m
            .params
            .into_iter()
            .map(|p| cur::Param {
                name: p.name,
                kind: match p.kind {
                    v1::ParamType::Integer => cur::ParamType::Integer,
                    v1::ParamType::Number => cur::ParamType::Number,
                    v1::ParamType::Boolean => cur::ParamType::Boolean,
                    v1::ParamType::Text => cur::ParamType::Text,
                    v1::ParamType::TextList => cur::ParamType::TextList,
                },
                default_json: p.default_json,
                description: p.description,
            })
            .collect(),
        needs: m
            .needs
            .into_iter()
            .map(|f| match f {
                v1::Field::Failed => cur::Field::Failed,
                v1::Field::AgentName => cur::Field::AgentName,
                v1::Field::Model => cur::Field::Model,
                v1::Field::Tool => cur::Field::Tool,
                v1::Field::Tokens => cur::Field::Tokens,
                v1::Field::InputText => cur::Field::InputText,
                v1::Field::OutputText => cur::Field::OutputText,
                v1::Field::ToolArguments => cur::Field::ToolArguments,
                v1::Field::ToolResult => cur::Field::ToolResult,
            })
            .collect(),
    }
}
