"""Continual training on task streams: one trainer, pluggable methods (mtl, seq-lora, lwf-lora, o-lora,
...), scores of every task after every task, and the forgetting report.

    config.py     settings (config/training/continual.yaml)
    tasks.py      a stream's tasks: training examples and scored test clips; task orders
    adapters.py   named peft LoRA adapters: create, load, activate, save
    losses.py     distillation (LwF) and orthogonality (O-LoRA) terms
    methods/      the methods behind one protocol (methods/base.py)
    scores.py     T2M / M2T / held-out loss of every task for one model state
    trainer.py    run_continual: task by task, resumable
    report.py     matrices, AF AR AD AMM AWF FR BWT FWT, Markdown table, heatmaps
    benchmark.py  every method x several orders, then the report
"""
