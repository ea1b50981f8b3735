"""The benchmark harness: `python -m tools.bench [--quick]`, `promote bench`, `make bench`.

It measures, in one run on the local broker and database, the ceilings (Kafka's perf tools,
a five-hop aiokafka pass-through chain), the pipeline (end to end, each stage alone,
latency at half load, memory), redaction against Presidio, the pattern store's growth and
the replay rate, and writes BENCHMARKS.md and a JSON file with every repetition.
"""
