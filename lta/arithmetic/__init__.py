"""Arithmetic on adapters, pure functions of pytrees (the paper's Eq. 1-4).

  compositions   tree ops and the named compositions (task_only, add, ...)
  merge_methods  factor / delta merging, TIES and DARE
  compat         the checks that refuse adapters that do not compose
"""
