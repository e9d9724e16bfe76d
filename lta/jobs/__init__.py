"""Jobs: one module per command that runs the layers; no job imports another.

  merge      lta merge: compose adapters, fold into the base, export
  evaluate   lta eval: decode and score one adapter or a composition
  miniature  lta miniature: the pipeline over seeds, with statistics
  sweep      lta sweep: one command over a grid of gin bindings
  report     lta report: the paper's tables from result directories
"""
