//! The costliest LLM calls of a scan ("what was in the input on the 14 most
//! expensive calls last week"): kept while the scan streams, in a heap of N, so
//! memory does not grow with the input. Cost is at list prices (cache priced
//! apart); ties go to more total tokens, then the span id.

use crate::model::{InputPart, Span, Usage};
use crate::prices::Prices;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// One LLM call, as `top` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Call {
    pub trace_id: String,
    pub span_id: String,
    pub session: String,
    pub model: Option<String>,
    pub start_ns: u64,
    /// at list prices; `None` when the model has no price
    pub cost_usd: Option<f64>,
    pub total_tokens: u64,
    pub usage: Usage,
    /// the input by parts (empty when the input was not captured)
    pub parts: Vec<InputPart>,
}

impl Call {
    /// Higher is costlier: cost, then total tokens, then the span id (smaller first).
    fn rank(&self, other: &Self) -> Ordering {
        let cost = |c: &Call| c.cost_usd.unwrap_or(-1.0);
        cost(self)
            .total_cmp(&cost(other))
            .then(self.total_tokens.cmp(&other.total_tokens))
            .then(other.span_id.cmp(&self.span_id))
    }
}

/// A min-heap entry: the cheapest of the kept calls on top.
struct Kept(Call);

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Kept {}
impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.rank(&self.0)
    }
}

/// The N costliest calls seen so far.
pub struct Costliest {
    n: usize,
    prices: Prices,
    heap: BinaryHeap<Kept>,
}

impl Costliest {
    pub fn new(n: usize, prices: Prices) -> Self {
        Costliest {
            n,
            prices,
            heap: BinaryHeap::new(),
        }
    }

    /// Consider one LLM call of `session`.
    pub fn offer(&mut self, s: &Span, session: &Arc<str>) {
        if self.n == 0 {
            return;
        }
        let model = s.model.as_deref();
        let call = Call {
            trace_id: s.trace_id.to_string(),
            span_id: s.span_id.to_string(),
            session: session.to_string(),
            model: model.map(String::from),
            start_ns: s.start_ns,
            cost_usd: model.and_then(|m| self.prices.cost_of(m, &s.usage)),
            total_tokens: s.usage.input + s.usage.output,
            usage: s.usage,
            parts: Vec::new(),
        };
        if self.heap.len() == self.n {
            match self.heap.peek() {
                Some(cheapest) if call.rank(&cheapest.0) == Ordering::Greater => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        let parts = s.input_parts.as_deref().unwrap_or_default();
        self.heap.push(Kept(Call {
            parts: parts.to_vec(),
            ..call
        }));
    }

    /// The kept calls, costliest first.
    pub fn into_sorted(self) -> Vec<Call> {
        let mut v: Vec<Call> = self.heap.into_iter().map(|k| k.0).collect();
        v.sort_by(|a, b| b.rank(a));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Detail;

    fn call(id: &str, input: u64) -> Span {
        Span {
            trace_id: "t".into(),
            span_id: id.into(),
            detail: Some(Box::new(Detail {
                model: Some("gpt-4o".into()),
                usage: Usage {
                    input,
                    ..Usage::default()
                },
                ..Detail::default()
            })),
            ..Span::default()
        }
    }

    #[test]
    fn the_n_costliest_are_kept_costliest_first_ties_by_span_id() {
        let mut c = Costliest::new(3, Prices::with(&Default::default()));
        let s: Arc<str> = "s".into();
        for (id, input) in [
            ("a", 10),
            ("b", 500),
            ("c", 20),
            ("d", 500),
            ("e", 5),
            ("f", 400),
        ] {
            c.offer(&call(id, input), &s);
        }
        let ids: Vec<String> = c.into_sorted().into_iter().map(|c| c.span_id).collect();
        assert_eq!(ids, ["b", "d", "f"]);
    }
}

/// `top`'s JSON: `tokenhound.top/v1`.
#[derive(serde::Serialize)]
pub struct Top {
    pub schema: &'static str,
    pub llm_calls: u64,
    pub calls: Vec<TopCall>,
}

#[derive(serde::Serialize)]
pub struct TopCall {
    #[serde(flatten)]
    pub call: Call,
    /// content tokens of the captured input (its bytes / bytes per token)
    pub input_content_tokens: u64,
    pub parts: Vec<Part>,
    pub findings: Vec<Charged>,
}

#[derive(serde::Serialize)]
pub struct Part {
    #[serde(flatten)]
    pub part: InputPart,
    pub tokens: u64,
}

/// A finding that charges tokens to the call.
#[derive(serde::Serialize, Clone)]
pub struct Charged {
    pub rule: String,
    pub title: String,
    pub tokens: u64,
}

fn content_tokens(bytes: u64, per: f64) -> u64 {
    (bytes as f64 / per).ceil() as u64
}

/// The costliest calls of a scan that kept them, with what charges them;
/// call before `report::build` (which takes the findings).
pub fn build(o: &mut crate::scan::Outcome) -> Top {
    let costliest = std::mem::take(&mut o.costliest);
    let key = crate::model::span_key;
    let mut charged: rustc_hash::FxHashMap<u64, Vec<Charged>> = costliest
        .iter()
        .map(|c| (key(&c.trace_id, &c.span_id), Vec::new()))
        .collect();
    for run in &mut o.runs {
        let rule = &run.rule.id;
        let seen = run.findings.visit(|f| {
            for c in &f.waste {
                if let Some(list) = charged.get_mut(&key(&c.span.trace_id, &c.span.span_id)) {
                    list.push(Charged {
                        rule: rule.clone(),
                        title: f.title.clone(),
                        tokens: c.tokens,
                    });
                }
            }
        });
        seen.expect("findings set aside on disk can be read back");
    }
    let per = o.bytes_per_token;
    let calls = costliest
        .into_iter()
        .map(|call| {
            let mut parts: Vec<Part> = call
                .parts
                .iter()
                .map(|p| Part {
                    part: p.clone(),
                    tokens: content_tokens(p.bytes, per),
                })
                .collect();
            parts.sort_by_key(|p| std::cmp::Reverse(p.part.bytes));
            let bytes: u64 = call.parts.iter().map(|p| p.bytes).sum();
            let charges = charged.remove(&key(&call.trace_id, &call.span_id));
            TopCall {
                input_content_tokens: content_tokens(bytes, per),
                findings: charges.unwrap_or_default(),
                parts,
                call,
            }
        })
        .collect();
    Top {
        schema: "tokenhound.top/v1",
        llm_calls: o.totals.llm_calls,
        calls,
    }
}
