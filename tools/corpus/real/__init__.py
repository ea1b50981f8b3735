"""Real agent runs (tau2-bench retail, wiki-search) as OpenTelemetry traces, and the
evaluation of the pipeline's judgment on them (``python -m tools.corpus.real --help``)."""
