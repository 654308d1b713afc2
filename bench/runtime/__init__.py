"""The runtime benchmark (bench/bench_runtime.py is its entry point), one concept a module: workload (what
is measured, with how many requests), stats, processes (children, the agent node, its client over topics),
experts, context (what the parts of a run share), parts/ (one module per part), scaling_worker (the
expert-count part's own process) and report (targets, summary, result files). Imported as `runtime`: the
entry point's folder, bench/, is first on sys.path, as for bench/common.py."""
