"""lta: language and task arithmetic with parameter-efficient layers.

The packages, lowest layer first (README, "Layout", has one line each):
adapters, models, checkpoints, data, languages, arithmetic, train, eval,
synthetic, pipeline, jobs, cli; plus api.py, errors.py, host_memory.py and
partitioning.py.

Modules that moved in the layered layout keep their old import name for one
release: importing one warns once and returns the module at its new place.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys
import warnings

from lta import errors
from lta import host_memory

# Before jax starts its threads: XLA:CPU's temporaries reuse freed pages.
try:
  host_memory.keep_freed_memory()
except errors.ConfigError as e:  # `lta COMMAND` stops on it (lta.cli.main)
  warnings.warn(f"lta: {e}; malloc left as it is", stacklevel=2)

# The repo's gin/ directory: runs/, models/, peft/, experiments/.
GIN_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "gin")

# old module -> new module, for user code and gin files' `import` lines.
MOVED = {
    "lta.model": "lta.models.mt5",
    "lta.model.config": "lta.models.mt5.config",
    "lta.model.network": "lta.models.mt5.network",
    "lta.model.layers": "lta.models.layers",
    "lta.decoding": "lta.models.decoding",
    "lta.peft": "lta.adapters",
    "lta.peft.config": "lta.adapters.config",
    "lta.peft.trainable": "lta.adapters.trainable",
    "lta.peft.manifest": "lta.adapters.manifest",
    "lta.peft.merge": "lta.adapters.deltas",
    "lta.peft.adapter_io": "lta.adapters.adapter_io",
    "lta.trees": "lta.adapters.tree",
    "lta.compat": "lta.arithmetic.compat",
    "lta.merge_methods": "lta.arithmetic.merge_methods",
    "lta.relatedness": "lta.languages.related",
    "lta.uriel_geo": "lta.languages.geo",
    "lta.vocab": "lta.data.vocab",
    "lta.preprocessors": "lta.data.preprocessors",
    "lta.denoising": "lta.data.denoising",
    "lta.input_pipeline": "lta.data.input_pipeline",
    "lta.trainer": "lta.train.loop",
    "lta.train_state": "lta.train.state",
    "lta.optimizers": "lta.train.optimizers",
    "lta.train_progress": "lta.train.progress",
    "lta.preemption": "lta.train.preemption",
    "lta.evaluation": "lta.eval.scoring",
    "lta.metrics": "lta.eval.metrics",
    "lta.langid": "lta.eval.langid",
    "lta.sweep": "lta.eval.lambda_selection",
    "lta.results": "lta.eval.results",
    "lta.reporting": "lta.eval.report",
    "lta.methods": "lta.eval.methods",
    "lta.stages": "lta.pipeline.stages",
    "lta.pipeline_data": "lta.pipeline.data",
    "lta.pipeline_report": "lta.pipeline.report",
    "lta.merge_job": "lta.jobs.merge",
    "lta.eval_job": "lta.jobs.evaluate",
    "lta.miniature": "lta.jobs.miniature",
    "lta.sweep_launcher": "lta.jobs.sweep",
    "lta.report_job": "lta.jobs.report",
    "lta.gin_cli": "lta.cli.gin_flags",
    "lta.gin_registry": "lta.cli.gin_registry",
    "lta.main": "lta.cli",
    "lta.main.cli": "lta.cli.main",
    **{f"lta.main.{name}": f"lta.cli.{name}" for name in (
        "eval", "make_world", "merge", "miniature", "pipeline",
        "prepare_data", "report", "runner", "sweep", "train")},
}
# `lta.models`, `lta.arithmetic` and `lta.pipeline` were modules and are now
# packages of the same name: their old contents are in contract.py,
# compositions.py and run.py.


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Finds an old module name and loads the module at its new place."""

  def find_spec(self, name, path=None, target=None):
    # First on sys.meta_path: an old name's parent is the new package, where
    # the path finder would load a second copy of a module (lta.peft.config
    # from lta/adapters/config.py), registering its configurables twice.
    del path, target
    if name not in MOVED:
      return None
    return importlib.util.spec_from_loader(name, self)

  @staticmethod
  def _warn(name):
    warnings.warn(f"lta: module {name} moved to {MOVED[name]}; the old name "
                  "works until the next release", FutureWarning, stacklevel=3)

  def create_module(self, spec):
    self._warn(spec.name)
    return importlib.import_module(MOVED[spec.name])

  def exec_module(self, module):
    del module  # already executed at its new name

  def get_code(self, name):  # for `python -m <old name>`
    self._warn(name)
    new = importlib.util.find_spec(MOVED[name])
    return new.loader.get_code(new.name)


sys.meta_path.insert(0, _MovedModule())  # before PathFinder: see find_spec
