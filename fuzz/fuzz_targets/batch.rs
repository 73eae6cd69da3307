//! Arbitrary spans (ids that repeat, parents that loop or dangle, any texts
//! and numbers) through assembly into the columns the host hands to detectors.
//! What a detector is promised: every column has one entry per row, every
//! string index is in the table (or "none"), every parent is a row of the same
//! trace, and walking up from any row ends (no parent loops).
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tokenhound::engine::Columns;
use tokenhound::model::{self, Assembler, Kind, Span, Usage};

#[derive(Arbitrary, Debug)]
struct S {
    trace: u8,
    id: u8,
    parent: Option<u8>,
    kind: u8,
    session: Option<u8>,
    start: u64,
    end: u64,
    name: String,
    model: Option<String>,
    tool: Option<String>,
    args: Option<String>,
    text: Option<String>,
    input: u64,
    output: u64,
    failed: bool,
}

fn span(s: S) -> Span {
    Span {
        trace_id: format!("{:032x}", s.trace % 4).into(),
        span_id: format!("{:016x}", s.id).into(),
        parent_id: s.parent.map(|p| format!("{p:016x}").into()),
        name: s.name.into(),
        kind: [Kind::Llm, Kind::Tool, Kind::Agent, Kind::Other][s.kind as usize % 4],
        start_ns: s.start,
        end_ns: s.end,
        failed: s.failed,
        session: s.session.map(|x| x.to_string().into()),
        model: s.model.map(Into::into),
        tool_name: s.tool.map(Into::into),
        tool_args: s.args.map(Into::into),
        input_text: s.text.clone().map(Into::into),
        output_text: s.text.map(Into::into),
        usage: Usage {
            input: s.input,
            output: s.output,
            ..Usage::default()
        },
        ..Span::default()
    }
}

fuzz_target!(|spans: Vec<S>| {
    let mut asm = Assembler::new(u64::MAX);
    for s in spans {
        let _ = asm.add(span(s));
    }
    for mut b in model::batches(asm.take_all(), 64) {
        let n = b.span_count();
        let (cols, data) = Columns::build(&mut b);
        let c = &cols.all;
        let strings = c.strings.len() as u32;
        for col in [&c.session, &c.trace, &c.span_id, &c.name] {
            assert_eq!(col.len(), n);
            assert!(col.iter().all(|&i| i < strings));
        }
        for col in [&c.agent_name, &c.model, &c.tool_name, &c.tool_server] {
            assert_eq!(col.len(), n);
            assert!(col.iter().all(|&i| i < strings || i == u32::MAX));
        }
        assert_eq!(c.parent.len(), n);
        for row in 0..n {
            let mut at = row as i32;
            for _ in 0..=n {
                at = c.parent[at as usize];
                if at < 0 {
                    break;
                }
                assert!((at as usize) < n);
                assert_eq!(c.trace[at as usize], c.trace[row], "parent in another trace");
            }
            assert!(at < 0, "row {row}: walking up never ends");
            let _ = data.text(row as u32, tokenhound::engine::TextField::Input);
        }
    }
});
