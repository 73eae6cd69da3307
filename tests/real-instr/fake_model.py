"""A fake OpenAI and Anthropic API on localhost, for recording real spans.

The model follows one script whatever it is asked: read CLAUDE.md, run the
tests three times (the first two fail), read CLAUDE.md again, then answer with
a filler opener. Which step comes next is the number of tool results in the
request, so every client library gets the same conversation. Each response
carries usage (with cache reads, and cache writes for Anthropic), and the server
keeps what it served: the truth the spans are checked against.
"""

import http.server
import json
import threading

# (tool, arguments) per step; after the last, the answer.
SCRIPT = [
    ("read_file", {"path": "CLAUDE.md"}),
    ("run_tests", {"suite": "unit"}),
    ("run_tests", {"suite": "unit"}),
    ("run_tests", {"suite": "unit"}),
    ("read_file", {"path": "CLAUDE.md"}),
]
ANSWER = "You're absolutely right! The tests pass now: the flaky fixture was the cause."
OPENAI_MODEL = "gpt-4o-2024-08-06"
ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"


def usage_at(step):
    """Usage of the call at `step`: input grows with the conversation."""
    total_input = 1200 + 700 * step
    cache_read = 1024 if step > 0 else 0
    cache_write = 600 if step == 0 else 0
    output = 20 if step < len(SCRIPT) else 18
    return total_input, cache_read, cache_write, output


def tool_results(messages):
    """How many tool results a request's messages hold (OpenAI or Anthropic shape)."""
    n = 0
    for m in messages:
        if m.get("role") == "tool":
            n += 1
        content = m.get("content")
        if isinstance(content, list):
            n += sum(1 for c in content if isinstance(c, dict) and c.get("type") == "tool_result")
    return n


class Served:
    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def add(self, provider, step, total_input, cache_read, cache_write, output, tool):
        with self.lock:
            self.calls.append({
                "provider": provider, "step": step, "input_tokens": total_input,
                "cache_read": cache_read, "cache_write": cache_write,
                "output_tokens": output, "tool": tool,
            })

    def truth(self):
        c = self.calls
        return {
            "llm_calls": len(c),
            "input_tokens": sum(x["input_tokens"] for x in c),
            "output_tokens": sum(x["output_tokens"] for x in c),
            "cache_read": sum(x["cache_read"] for x in c),
            "cache_write": sum(x["cache_write"] for x in c),
            "tool_calls_requested": sum(1 for x in c if x["tool"]),
            "calls": c,
        }


def openai_response(n, step):
    total_input, cache_read, _, output = usage_at(step)
    message = {"role": "assistant", "content": None}
    if step < len(SCRIPT):
        tool, args = SCRIPT[step]
        message["tool_calls"] = [{
            "id": f"call_{n:04d}", "type": "function",
            "function": {"name": tool, "arguments": json.dumps(args)},
        }]
        finish = "tool_calls"
    else:
        message["content"] = ANSWER
        finish = "stop"
    return {
        "id": f"chatcmpl-{n:06d}", "object": "chat.completion", "created": 1790812800 + n,
        "model": OPENAI_MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": total_input, "completion_tokens": output,
            "total_tokens": total_input + output,
            "prompt_tokens_details": {"cached_tokens": cache_read},
        },
        "system_fingerprint": "fp_fake",
    }


def anthropic_response(n, step):
    total_input, cache_read, cache_write, output = usage_at(step)
    if step < len(SCRIPT):
        tool, args = SCRIPT[step]
        content = [{"type": "tool_use", "id": f"toolu_{n:04d}", "name": tool, "input": args}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": ANSWER}]
        stop = "end_turn"
    return {
        "id": f"msg_{n:06d}", "type": "message", "role": "assistant", "model": ANTHROPIC_MODEL,
        "content": content, "stop_reason": stop, "stop_sequence": None,
        # Anthropic's input_tokens exclude the cache reads and writes.
        "usage": {
            "input_tokens": total_input - cache_read - cache_write, "output_tokens": output,
            "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write,
        },
    }


def serve():
    """Start the server on a free port; returns (base URL, Served, server)."""
    served = Served()
    counter = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            step = tool_results(body.get("messages", []))
            counter[0] += 1
            n = counter[0]
            if self.path.endswith("/chat/completions"):
                out, provider = openai_response(n, step), "openai"
            elif self.path.endswith("/messages"):
                out, provider = anthropic_response(n, step), "anthropic"
            else:
                self.send_response(404)
                self.end_headers()
                return
            total_input, cache_read, cache_write, output = usage_at(step)
            if provider == "openai":
                cache_write = 0  # OpenAI reports no cache writes
            tool = SCRIPT[step][0] if step < len(SCRIPT) else None
            served.add(provider, step, total_input, cache_read, cache_write, output, tool)
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_{n:06d}")
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", served, server
