//! subagent-duplicate-context: sub-agents of one parent each sent the same context
//! (a diff, a file) uncached, instead of sharing one cached block.

use tokenhound_sdk::chunk::Chunked;
use tokenhound_sdk::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct SubagentDuplicate {
    min_shared_tokens: u64,
    bytes_per_token: f64,
    not_checked: u64,
    shared_but_cached: u64,
}

impl Detector for SubagentDuplicate {
    fn save(&self) -> Option<Vec<u8>> {
        state::save(self)
    }
    fn restore(_: &Params, saved: &[u8]) -> Result<Self, String> {
        state::restore(saved)
    }
    fn metadata() -> Metadata {
        Metadata::new(
            "subagent-duplicate-context",
            env!("CARGO_PKG_VERSION"),
            "Sibling sub-agents sent the same context to the model, uncached",
        )
        .param(Param::integer(
            "min_shared_tokens",
            500,
            "shared content tokens that make a sibling count",
        ))
        .param(Param::bytes_per_token())
        .needs(&[Field::Tokens, Field::InputText, Field::AgentName])
        .kinds(CALLS_AND_AGENTS)
    }

    fn new(p: &Params) -> Result<Self, String> {
        Ok(SubagentDuplicate {
            min_shared_tokens: p.u64("min_shared_tokens"),
            bytes_per_token: p.bytes_per_token()?,
            not_checked: 0,
            shared_but_cached: 0,
        })
    }

    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        let mut out = Vec::new();
        for turn in b.turns() {
            // First LLM call of each agent, in turn order.
            let mut firsts: Vec<(u32, u32)> = Vec::new(); // (agent row, llm row)
            for &r in turn.rows.iter().filter(|&&r| b.is_llm(r)) {
                if let Some(a) = b.agent_of(r) {
                    if !firsts.iter().any(|&(x, _)| x == a) {
                        firsts.push((a, r));
                    }
                }
            }
            // Group by the agent span's parent; keep groups of two or more.
            let mut parents: Vec<(u32, Vec<u32>)> = Vec::new();
            for &(a, r) in &firsts {
                let Some(p) = b.parent(a) else { continue };
                match parents.iter_mut().find(|(x, _)| *x == p) {
                    Some((_, v)) => v.push(r),
                    None => parents.push((p, vec![r])),
                }
            }
            for (parent, mut sibs) in parents.into_iter().filter(|(_, v)| v.len() > 1) {
                b.sort_rows(&mut sibs);
                if let Some(f) = self.check_parent(b, parent, &sibs) {
                    out.push(f);
                }
            }
        }
        out
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![
            (
                "parents not checked (no input content)".into(),
                self.not_checked,
            ),
            ("parents shared but cached".into(), self.shared_but_cached),
        ]
    }
}

impl SubagentDuplicate {
    fn check_parent(&mut self, b: &Batch, parent: u32, sibs: &[u32]) -> Option<Finding> {
        let texts: Vec<Option<String>> =
            sibs.iter().map(|&r| b.text(r, TextField::Input)).collect();
        let Some(first) = texts[0].as_deref() else {
            self.not_checked += 1;
            return None;
        };
        // The first sibling is cut into chunks once, not once per sibling.
        let first = Chunked::new(first.as_bytes());
        let mut counted = Vec::new();
        let mut unchecked = false;
        for (i, &r) in sibs.iter().enumerate().skip(1) {
            let Some(t) = texts[i].as_deref() else {
                unchecked = true;
                continue;
            };
            let shared = content_tokens(first.shared_bytes(t.as_bytes()), self.bytes_per_token);
            if shared >= self.min_shared_tokens {
                counted.push((r, shared, shared.saturating_sub(b.cache_read_tokens(r))));
            }
        }
        let waste: u64 = counted.iter().map(|c| c.2).sum();
        if waste == 0 {
            if !counted.is_empty() {
                self.shared_but_cached += 1;
            } else if unchecked {
                self.not_checked += 1;
            }
            return None;
        }
        let parent_name = b.agent_name(parent).unwrap_or_else(|| b.name(parent));
        let mut f = Finding::new(
            format!("{} sub-agents of {parent_name} re-sent the same context", counted.len() + 1),
            format!(
                "{} sub-agents under {parent_name} each sent context the first one had already sent, uncached.",
                counted.len() + 1
            ),
            "Put the shared context in one parent block and reference it from the sub-agents with prompt caching.",
        )
        .session(b.session(parent))
        .trace(b.trace(parent))
        .span(b.span_ref(parent))
        .span(b.span_ref(sibs[0]))
        // The pattern (spec "Patterns"): the parent agent's name.
        .pattern(parent_name)
        .evidence("parent", parent_name)
        .evidence("siblings", sibs.len());
        for (r, shared, w) in counted {
            f = f
                .evidence(&format!("shared_tokens[{}]", b.span_id(r)), shared)
                .span(b.span_ref(r))
                .charge(b.span_ref(r), w);
        }
        Some(f)
    }
}

detector!(SubagentDuplicate);
