"""The frozen text-motion evaluator and every metric, used by tests, benchmarks and reports."""
