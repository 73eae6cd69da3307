//! retry-storm: "agent turns where the same tool was called more than twice in a row".
//! Waste is every LLM call that re-sent the context between the retries.

use tokenhound_sdk::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct RetryStorm {
    min_calls: usize,
    max_retries: u64,
}

impl RetryStorm {
    /// Whether `next` continues a run ending with `prev` (same agent is given).
    fn joins(&self, b: &Batch, prev: u32, next: u32) -> bool {
        if b.tool_name(prev) != b.tool_name(next) {
            return false;
        }
        if let (Some(a), Some(c)) = (b.tool_server(prev), b.tool_server(next)) {
            if a != c {
                return false;
            }
        }
        // A run is split after each successful call, unless the arguments repeat.
        b.failed(prev)
            || matches!((b.tool_args_hash(prev), b.tool_args_hash(next)), (Some(x), Some(y)) if x == y)
    }
}

impl Detector for RetryStorm {
    fn save(&self) -> Option<Vec<u8>> {
        state::save(self)
    }
    fn restore(_: &Params, saved: &[u8]) -> Result<Self, String> {
        state::restore(saved)
    }
    fn metadata() -> Metadata {
        Metadata::new(
            "retry-storm",
            env!("CARGO_PKG_VERSION"),
            "The same tool called three or more times in a row in one turn, each retry re-sending the context",
        )
        .param(Param::integer("min_calls", 3, "calls in a run that make a finding"))
        .param(Param::integer("max_retries_per_turn", 2, "retry cap suggested in the fix"))
        .param(Param::bytes_per_token())
        .needs(&[Field::Failed, Field::Tool, Field::Tokens, Field::AgentName])
        .kinds(CALLS_AND_AGENTS)
    }

    fn new(p: &Params) -> Result<Self, String> {
        let min_calls = p.u64("min_calls");
        if min_calls < 2 {
            return Err(format!("min_calls must be at least 2, got {min_calls}"));
        }
        Ok(RetryStorm {
            min_calls: min_calls as usize,
            max_retries: p.u64("max_retries_per_turn"),
        })
    }

    fn observe(&mut self, b: &Batch) -> Vec<Finding> {
        let mut out = Vec::new();
        for turn in b.turns() {
            let llm: Vec<u32> = turn.rows.iter().copied().filter(|&r| b.is_llm(r)).collect();
            // Tool calls per agent, in turn order.
            let mut by_agent: Vec<(Option<u32>, Vec<u32>)> = Vec::new();
            for &r in turn.rows.iter().filter(|&&r| b.is_tool(r)) {
                let a = b.agent_of(r);
                match by_agent.iter_mut().find(|(x, _)| *x == a) {
                    Some((_, v)) => v.push(r),
                    None => by_agent.push((a, vec![r])),
                }
            }
            for (_, calls) in &by_agent {
                for run in runs(calls, |p, n| self.joins(b, p, n)) {
                    if run.len() < self.min_calls {
                        continue;
                    }
                    out.push(self.finding(b, &run, &llm));
                }
            }
        }
        out
    }
}

impl RetryStorm {
    fn finding(&self, b: &Batch, run: &[u32], llm: &[u32]) -> Finding {
        let tool = b.tool_name(run[0]).unwrap_or("(unnamed tool)");
        let failures = run.iter().filter(|&&r| b.failed(r)).count();
        let mut f = Finding::new(
            format!("{tool} called {} times in a row", run.len()),
            format!(
                "{tool} was called {} times in a row in one turn ({failures} failed); every LLM call between the retries re-sent the whole context.",
                run.len()
            ),
            format!(
                "Retry inside the tool's server with backoff and jitter, and cap retries at {} per tool per turn in the agent.",
                self.max_retries
            ),
        )
        .session(b.session(run[0]))
        .trace(b.trace(run[0]))
        .spans(run.iter().map(|&r| b.span_ref(r)))
        .evidence("tool", tool)
        .evidence("calls", run.len())
        .evidence("failed", failures);
        // The pattern (spec "Patterns"): the tool and its server.
        f = f.pattern(match b.tool_server(run[0]) {
            Some(s) => format!("{tool} @ {s}"),
            None => tool.to_string(),
        });
        if let Some(s) = b.tool_server(run[0]) {
            f = f.evidence("server", s);
        }
        if let Some(a) = b
            .agent_of(run[0])
            .and_then(|a| b.agent_name(a).or(Some(b.name(a))))
        {
            f = f.evidence("agent", a);
        }
        let mut resent = 0;
        for w in run.windows(2) {
            let (from, to) = (b.start(w[0]), b.start(w[1]));
            for &c in llm
                .iter()
                .filter(|&&c| b.start(c) > from && b.start(c) < to)
            {
                resent += 1;
                f = f.charge(b.span_ref(c), b.total_tokens(c));
            }
        }
        f.evidence("llm_calls_between_retries", resent)
    }
}

detector!(RetryStorm);
