"""Evaluation: scoring, metrics, λ selection, results and reports.

  scoring    decode a task's examples and score them
  metrics    SentencePiece ROUGE, SQuAD F1/EM, bootstrap intervals
  langid     language identification for the fidelity metric
  lambda_selection  λ grids, their checks and the best-λ selection
  compilations  counting XLA compilations (a λ sweep compiles once)
  methods    the method registry: row labels as data
  results    ResultRecord: the one results schema, written and read here
  report     the paper's tables and plots from result records
"""
