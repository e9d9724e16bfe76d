"""Training: pure steps, the loop of named stages, its state, optimizers,
progress and preemption.

  steps        loss sums, train_step, eval_step, microbatching; their jitting
               with shardings and donation
  loop         train: the gin-configured loop, resumable, as named stages
  state        TrainState: trainable params and optimizer state only
  optimizers   make_optimizer / make_schedule (optax)
  progress     step timing and the progress line
  preemption   SIGTERM / SIGINT handling: checkpoint, then exit 75
"""
