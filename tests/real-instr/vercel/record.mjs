// The Vercel AI SDK's own spans (experimental_telemetry) for the agent loop of
// fake_model.SCRIPT, written as OTLP JSON lines like record.py's:
//   node record.mjs BASE_URL OUT.jsonl
// generateText runs the loop (stopWhen); the tools are the SDK's `tool`s, a
// failed test run thrown back to the model as the SDK does with tool errors.
import { generateText, tool, stepCountIs } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { z } from "zod";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { context } from "@opentelemetry/api";
import { writeFileSync, appendFileSync } from "node:fs";

const [base, out] = process.argv.slice(2);
// As a Node app's OTel setup does (NodeSDK, @vercel/otel): spans nest.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
writeFileSync(out, "");
const exporter = {
  export(spans, done) {
    appendFileSync(out, Buffer.from(JsonTraceSerializer.serializeRequest(spans)).toString() + "\n");
    done({ code: 0 });
  },
  shutdown: async () => {},
};
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "flaky-fixer" }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer("flaky-fixer");

const SYSTEM = "You fix flaky tests. Read CLAUDE.md before you change anything.";
const USER = "The unit suite fails now and then. Fix it.";
const CLAUDE_MD =
  "# CLAUDE.md\n\n" +
  Array.from({ length: 28 }, (_, i) => `- Rule ${i}: keep changes small and run the unit suite before proposing one.\n`).join("");
let attempts = 0;

const openai = createOpenAI({ baseURL: base + "/v1", apiKey: "sk-fake" });
const result = await generateText({
  model: openai.chat("gpt-4o"),
  system: SYSTEM,
  prompt: USER,
  maxRetries: 0,
  stopWhen: stepCountIs(10),
  tools: {
    read_file: tool({
      description: "Read a file",
      inputSchema: z.object({ path: z.string() }),
      execute: async () => CLAUDE_MD,
    }),
    run_tests: tool({
      description: "Run a test suite",
      inputSchema: z.object({ suite: z.string() }),
      execute: async () => {
        attempts += 1;
        if (attempts <= 2) throw new Error("connection reset by peer (request 7f3a9c)");
        return "42 passed";
      },
    }),
  },
  experimental_telemetry: {
    isEnabled: true,
    functionId: "flaky-fixer",
    metadata: { sessionId: "session-real-instr-1" },
    tracer,
  },
});
console.log(result.text);
await provider.shutdown();
