//! context-reread: the same file read again in a session, unchanged, instead of
//! being read once and served from the prompt cache.

use std::collections::HashMap;
use tokenhound_sdk::*;

const KEY_FIELDS: [&str; 4] = ["path", "file_path", "filename", "uri"];

#[derive(serde::Serialize, serde::Deserialize)]
struct ContextReread {
    read_tools: Vec<String>,
    bytes_per_token: f64,
    /// (session, key), each by its index in `names` → what was seen, in
    /// first-read order. The state of every session is kept to the end (a
    /// session may go on in any later batch), so each text is held once: as
    /// strings per read key it was the detector's whole growth with the input.
    keys: HashMap<(u32, u32), usize>,
    seen: Vec<KeyState>,
    names: Names,
}

/// Texts held once each, by index.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Names {
    all: Vec<String>,
    index: HashMap<String, u32>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.all.push(s.to_string());
        self.index.insert(s.to_string(), self.all.len() as u32 - 1);
        self.all.len() as u32 - 1
    }
    fn get(&self, i: u32) -> &str {
        &self.all[i as usize]
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyState {
    /// the session, the key and the tool, by their index in `names`
    session: u32,
    key: u32,
    tool: u32,
    last_size: Option<u64>,
    reads: u64,
    /// re-reads so far; their spans are not kept: each is charged in the
    /// finding of the batch that holds it, and the host's group keeps them
    /// (a session's state grew with every re-read otherwise)
    rereads: u64,
    first: SpanRef,
}

/// The read's key: the first of the argument fields, else the MCP resource URI.
/// Arguments that are one bare string (OpenInference's LangChain TOOL spans
/// record a one-argument tool's input so: `"CLAUDE.md"`) have no fields: the
/// string is the path.
fn read_key(b: &Batch, row: u32) -> Option<String> {
    if let Some(args) = b.text(row, TextField::ToolArguments) {
        match serde_json::from_str::<serde_json::Value>(&args) {
            Ok(serde_json::Value::Object(map)) => {
                for k in KEY_FIELDS {
                    match map.get(k) {
                        Some(serde_json::Value::String(s)) => return Some(s.clone()),
                        Some(v) if !v.is_null() => return Some(v.to_string()),
                        _ => {}
                    }
                }
            }
            Ok(serde_json::Value::String(s)) if !s.trim().is_empty() => return Some(s),
            Err(_) if !args.trim().is_empty() && !args.contains('\n') => {
                return Some(args.trim().to_string())
            }
            _ => {}
        }
    }
    b.text(row, TextField::ResourceUri)
}

impl Detector for ContextReread {
    fn save(&self) -> Option<Vec<u8>> {
        state::save(self)
    }
    fn restore(_: &Params, saved: &[u8]) -> Result<Self, String> {
        state::restore(saved)
    }
    fn metadata() -> Metadata {
        Metadata::new(
            "context-reread",
            env!("CARGO_PKG_VERSION"),
            "The same unchanged file read again in a session instead of being cached",
        )
        .param(Param::text_list(
            "read_tools",
            &[
                "read_file",
                "Read",
                "read",
                "fs_read",
                "view",
                "cat",
                "get_file_contents",
                "read_text_file",
                "resources/read",
            ],
            "tool names that read a file",
        ))
        .param(Param::bytes_per_token())
        .needs(&[Field::Tool, Field::ToolArguments, Field::ToolResult])
        .kinds(CALLS_AND_AGENTS)
    }

    fn new(p: &Params) -> Result<Self, String> {
        Ok(ContextReread {
            read_tools: p.strings("read_tools"),
            bytes_per_token: p.bytes_per_token()?,
            keys: HashMap::new(),
            seen: Vec::new(),
            names: Names::default(),
        })
    }

    /// A finding as soon as a batch holds re-reads; later re-reads of the same
    /// key in the session join it (same group), so a long session is reported
    /// while it runs and still counts as one finding.
    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        // (key index, this batch's re-reads of it: span and tokens)
        let mut touched: Vec<(usize, Vec<(SpanRef, u64)>)> = Vec::new();
        for turn in b.turns() {
            for &r in &turn.rows {
                let Some(tool) = b
                    .tool_name(r)
                    .filter(|t| b.is_tool(r) && self.read_tools.iter().any(|x| x == t))
                else {
                    continue;
                };
                let Some(key) = read_key(b, r) else { continue };
                let size = b.text_size(r, TextField::ToolResult);
                let id = (self.names.id(b.session(r)), self.names.id(&key));
                let i = match self.keys.get(&id) {
                    Some(&i) => i,
                    None => {
                        self.seen.push(KeyState {
                            session: id.0,
                            key: id.1,
                            tool: self.names.id(tool),
                            last_size: None,
                            reads: 0,
                            rereads: 0,
                            first: b.span_ref(r),
                        });
                        self.keys.insert(id, self.seen.len() - 1);
                        self.seen.len() - 1
                    }
                };
                let st = &mut self.seen[i];
                if st.reads > 0 && size.is_some() && size == st.last_size {
                    let tokens = content_tokens(size.unwrap_or(0), self.bytes_per_token);
                    let new = (b.span_ref(r), tokens);
                    st.rereads += 1;
                    match touched.iter_mut().find(|t| t.0 == i) {
                        Some(t) => t.1.push(new),
                        None => touched.push((i, vec![new])),
                    }
                }
                st.reads += 1;
                st.last_size = size;
            }
        }
        touched
            .into_iter()
            .map(|(i, new)| self.finding(i, new))
            .collect()
    }
}

impl ContextReread {
    /// The finding for key `i`, charging this batch's re-reads of it.
    fn finding(&self, i: usize, new: Vec<(SpanRef, u64)>) -> Finding {
        let s = &self.seen[i];
        let (session, key, tool) = (
            self.names.get(s.session),
            self.names.get(s.key),
            self.names.get(s.tool),
        );
        let n = s.rereads;
        let times = if n == 1 {
            "once".to_string()
        } else {
            format!("{n} times")
        };
        let mut f = Finding::new(
            format!("{key} re-read {times}"),
            format!(
                "{key} was read {} times in one session with the same content; each re-read put it in the context again at full price.",
                s.reads
            ),
            "Read the file once per session and mark it for prompt caching (cache_control: ephemeral); later turns then pay about 10% for it.",
        )
        .session(session)
        .group(format!("{session}\u{1f}{key}"))
        // The pattern (spec "Patterns"): the file, by its resource key.
        .pattern(key)
        .evidence("key", key)
        .evidence("tool", tool)
        .evidence("reads", s.reads)
        .evidence("rereads", n)
        .span(s.first.clone());
        for (span, tokens) in new {
            f = f.span(span.clone()).charge(span, tokens);
        }
        f
    }
}

detector!(ContextReread);
