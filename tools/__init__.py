"""Tools beside the product: the benchmark harness (``tools.bench``), the corpora and their
evaluation (``tools.corpus``) and the maintenance scripts (``tools.scripts``). They import the
product (``promoter``, ``services``, ``shared``); the product never imports them (the
``lint-imports`` contracts in pyproject.toml check both)."""
