//! Any bytes as an export file, read with format detection or each forced
//! format (the first byte picks), then assembled into traces as a scan does.
//! Covers OTLP JSON and protobuf, Langfuse JSON / JSONL / CSV, Phoenix, Logfire,
//! the console exporter, Helicone, and gzip / zstd framing (by magic bytes).
//! Limits are small so memory stays bounded: a record over 1 MiB is skipped.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use tokenhound::ingest::{InputFormat, Reader};
use tokenhound::model::{Assembler, Keep};

const FORMATS: [Option<InputFormat>; 8] = [
    None,
    Some(InputFormat::OtlpJson),
    Some(InputFormat::OtlpProto),
    Some(InputFormat::Langfuse),
    Some(InputFormat::Phoenix),
    Some(InputFormat::Logfire),
    Some(InputFormat::OtelConsole),
    Some(InputFormat::Helicone),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let mut reader = Reader::new(Keep::ALL);
    reader.format = FORMATS[pick as usize % FORMATS.len()];
    reader.max_record = 1 << 20;
    reader.max_document = 8 << 20;
    let mut asm = Assembler::new(u64::MAX);
    let name: Arc<str> = "fuzz".into();
    let source = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let _ = reader.read_from(&name, source, &mut |spans| {
        for s in spans {
            let _ = asm.add(s);
        }
    });
    for session in asm.take_all() {
        for t in &session.traces {
            assert!(!t.spans.is_empty());
        }
    }
    let (notes, _) = asm.take_notes();
    for n in notes {
        assert!(!n.what.is_empty());
    }
});
