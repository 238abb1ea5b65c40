"""Tuning: ASHA searches on Ray Tune over LoRA rank, learning rate and friends, each trial a
Ray Train run built by `medqa.training.driver`.

- `space.py` -- the search space and what a trial's parameters mean for the config (pure);
- `search.py` -- the `Tuner` shell, resume of an interrupted search;
- `results.py` -- the trials table, the best trial, plots (pure).

May import: config, console, reporting, runtime, training, ray.
"""
