//! A whole JSON document's records: a Langfuse trace download (`{trace,
//! observations}`) or API page (`{data}`), an array of records, a `{"spans":
//! […]}` wrapper, a Logfire table, or JSON objects one after another (the
//! console exporter). Each record is parsed on its own, so a broken one costs
//! only itself; each keeps the line it starts on.

use super::{records, InputError, Problem};
use crate::model::{FileName, Origin};
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;

/// The records of a document, with the line each starts on, and the session
/// a Langfuse trace download names for all of them.
pub struct Document {
    pub items: Vec<(u64, Value)>,
    pub session: Option<String>,
}

#[derive(serde::Deserialize)]
struct Wrapper<'a> {
    #[serde(borrow, default)]
    observations: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    data: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    spans: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    trace: Option<Value>,
}

/// Locates records in the document's text.
struct Text<'a> {
    name: &'a Arc<str>,
    file: FileName,
    text: &'a str,
}

impl Text<'_> {
    fn line(&self, raw: &RawValue) -> u64 {
        let offset = (raw.get().as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize);
        crate::location::line_of(self.text.as_bytes(), offset)
    }
    fn origin(&self, line: u64) -> Origin {
        Origin {
            file: self.file,
            line,
        }
    }
    fn unknown(&self, why: String) -> InputError {
        InputError::UnknownFormat {
            path: self.name.to_string(),
            why,
        }
    }
    /// Parse each record of a list on its own.
    fn push(&self, list: &[&RawValue], items: &mut Vec<(u64, Value)>, problems: &mut Vec<Problem>) {
        for raw in list {
            match serde_json::from_str::<Value>(raw.get()) {
                Ok(v) => items.push((self.line(raw), v)),
                Err(e) => problems.push(Problem::at(
                    &self.origin(self.line(raw)),
                    format!("record skipped: {e}"),
                )),
            }
        }
    }
}

/// The top-level JSON values of the text, one after another; what follows a
/// broken one is a problem (the values before it are kept).
fn values<'a>(t: &Text<'a>, problems: &mut Vec<Problem>) -> Result<Vec<&'a RawValue>, InputError> {
    let mut stream = serde_json::Deserializer::from_str(t.text).into_iter::<&RawValue>();
    let mut docs = Vec::new();
    loop {
        match stream.next() {
            None => return Ok(docs),
            Some(Ok(raw)) => docs.push(raw),
            Some(Err(e)) if docs.is_empty() => return Err(t.unknown(format!("not JSON: {e}"))),
            Some(Err(e)) => {
                let line = crate::location::line_of(t.text.as_bytes(), stream.byte_offset());
                problems.push(Problem::at(
                    &t.origin(line),
                    format!("the rest of the file is not JSON: {e}"),
                ));
                return Ok(docs);
            }
        }
    }
}

pub fn records(
    name: &Arc<str>,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Result<Document, InputError> {
    let t = Text {
        name,
        file: FileName::of(name),
        text,
    };
    let mut doc = Document {
        items: Vec::new(),
        session: None,
    };
    for raw in values(&t, problems)? {
        if raw.get().trim_start().starts_with('[') {
            let list: Vec<&RawValue> =
                serde_json::from_str(raw.get()).map_err(|e| t.unknown(e.to_string()))?;
            t.push(&list, &mut doc.items, problems);
            continue;
        }
        let w: Wrapper = serde_json::from_str(raw.get())
            .map_err(|e| t.unknown(format!("unexpected JSON: {e}")))?;
        if let Some(obs) = w.observations {
            doc.session = w
                .trace
                .as_ref()
                .and_then(|tr| tr.get("sessionId"))
                .and_then(Value::as_str)
                .map(String::from);
            t.push(&obs, &mut doc.items, problems);
        } else if let Some(d) = w.data.or(w.spans) {
            t.push(&d, &mut doc.items, problems);
        } else {
            let v: Value = serde_json::from_str(raw.get()).map_err(|e| t.unknown(e.to_string()))?;
            let line = t.line(raw);
            match records::table_rows(&v) {
                Some(rows) => doc.items.extend(rows.into_iter().map(|r| (line, r))),
                None => doc.items.push((line, v)),
            }
        }
    }
    Ok(doc)
}
