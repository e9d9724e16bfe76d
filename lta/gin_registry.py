"""Imports every module that defines gin configurables, so files can parse."""

import importlib

CONFIGURABLE_MODULES = (
    "lta.model.config",
    "lta.peft.config",
    "lta.models",
    "lta.optimizers",
    "lta.partitioning",
    "lta.trainer",
    "lta.vocab",
    "lta.sweep",
    "lta.merge_job",
    "lta.eval_job",
    "lta.pipeline",
    "lta_tasks",
)


def register_all() -> None:
  for name in CONFIGURABLE_MODULES:
    importlib.import_module(name)
