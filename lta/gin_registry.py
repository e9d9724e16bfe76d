"""Where lta's gin files live, and the modules that define configurables.

Importing every such module lets any gin file parse.
"""

import importlib
import os

# The repo's gin/ directory: runs/, models/, peft/, experiments/.
GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "gin")

CONFIGURABLE_MODULES = (
    "lta.model.config",
    "lta.peft.config",
    "lta.models",
    "lta.optimizers",
    "lta.partitioning",
    "lta.trainer",
    "lta.vocab",
    "lta.merge_job",
    "lta.eval_job",
    "lta.pipeline",
    "lta_tasks",
)


def register_all() -> None:
  for name in CONFIGURABLE_MODULES:
    importlib.import_module(name)
