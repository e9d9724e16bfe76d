"""Training: the loop, its state, optimizers, progress and preemption.

  loop         train: the gin-configured loop, resumable
  state        TrainState: trainable params and optimizer state only
  optimizers   make_optimizer / make_schedule (optax)
  progress     step timing and the progress line
  preemption   SIGTERM / SIGINT handling: checkpoint, then exit 75
"""
