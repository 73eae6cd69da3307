"""The four bottleneck queries of the story in DuckDB, over the same OTLP JSONL
file the scan benchmark reads: the baseline tokenhound is measured against.

Usage: python3 duckdb_queries.py FILE  (prints seconds and peak memory)
The queries are the simple forms of the spec's questions, not the full rules:
they bound what a hand-written SQL pass costs.
"""
import resource
import sys
import time

import duckdb

path = sys.argv[1]
t0 = time.time()
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(f"""
CREATE TABLE spans AS
SELECT s.traceId AS trace, s.spanId AS span, s.parentSpanId AS parent, s.name AS name,
       CAST(s.startTimeUnixNano AS UBIGINT) AS start_ns, s.status.code AS code,
       map_from_entries(list_transform(s.attributes, lambda a: {{'k': a.key, 'v': coalesce(a.value.stringValue, CAST(a.value.intValue AS VARCHAR))}})) AS attrs
FROM (SELECT unnest(ss.spans) AS s
      FROM (SELECT unnest(rs.scopeSpans) AS ss
            FROM (SELECT unnest(resourceSpans) AS rs FROM read_json('{path}', format='newline_delimited', maximum_object_size=1073741824))))
""")
queries = {
    "retry-storm": """
        SELECT trace, attrs['gen_ai.tool.name'] AS tool, count(*) FROM spans
        WHERE attrs['gen_ai.operation.name'] = 'execute_tool' GROUP BY ALL HAVING count(*) > 2""",
    "context-reread": """
        SELECT attrs['gen_ai.conversation.id'] AS session, attrs['gen_ai.tool.call.arguments'] AS args, count(*) FROM spans
        WHERE attrs['gen_ai.tool.name'] = 'read_file' GROUP BY ALL HAVING count(*) > 1""",
    "subagent-duplicate-context": """
        SELECT parent, count(DISTINCT md5(attrs['gen_ai.input.messages'])) FROM spans
        WHERE attrs['gen_ai.input.messages'] IS NOT NULL GROUP BY ALL""",
    "filler-preamble": """
        SELECT left(attrs['gen_ai.output.messages'], 200) FROM spans
        WHERE attrs['gen_ai.operation.name'] = 'chat'""",
}
for name, q in queries.items():
    con.execute(q).fetchall()
secs = time.time() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(f"duckdb: {secs:.2f} s, peak memory {peak / 1e6:.0f} MB")
