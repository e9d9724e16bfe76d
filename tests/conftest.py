"""Test-wide set-up: 8 fake CPU devices, set before JAX is imported, one
persistent XLA compilation cache for every test and the processes the
tests start, and quick compiles.

The tests compile the same small programs in many runs and processes; the
cache (keyed by the program, so never stale) lets every run after the first
skip compilation. Subprocesses share it through the environment, except the
processes of one multi-process job (tests/multiprocess/processes.py).

Compilation, not running, is most of a tiny model's time on CPU, so the
tests and their subprocesses compile without XLA's LLVM optimisation
(JAX_DISABLE_MOST_OPTIMIZATIONS): about half the CPU time of a compile.
The HLO passes still run; tests/model/test_execution.py (the quick
compiles test) checks that a training step's loss and gradients equal the
optimised program's.
"""

import os
import sys
import tempfile

import pytest

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402  (must follow XLA_FLAGS)

jax.config.update("jax_default_matmul_precision", "highest")

CACHE_DIR = os.path.join(tempfile.gettempdir(), "lta_trainer_tests_xla_cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", CACHE_DIR)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
jax.config.update("jax_compilation_cache_dir",
                  os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
# Started here, with the 8 devices above: an in-process `lta plan` would
# otherwise start JAX with a target's chip count (16 for v4-32) in whichever
# worker runs it first, and the mesh tests after it there would fail.
jax.devices()

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)


@pytest.fixture
def clean_gin():
  """A test that parses flags starts from no gin bindings, as a new process
  does, and leaves none behind (`pytest.mark.usefixtures("clean_gin")`)."""
  import gin  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  yield
  gin.clear_config()


# `make test` hands whole files to its 2 xdist workers in collection order
# (--dist loadfile --no-loadscope-reorder). xdist's default order, files with
# the most tests first, left the files of a few long end-to-end tests (the
# multi-process jobs above all) for the end, where one worker ran them while
# the other sat idle. These files, the longest first, start the run; the
# many short files then fill both workers up to the same end.
LONGEST_FIRST = (
    "tests/tasks/test_peft_kinds_e2e_tiny.py",
    "tests/multiprocess/test_train.py",
    "tests/cli/test_study_recipes.py",
    "tests/tasks/test_decoder_only_e2e_tiny.py",
    "tests/tasks/test_bart_data_e2e.py",
    "tests/multiprocess/test_eval.py",
    "tests/multiprocess/test_kill_and_preempt.py",
    "tests/peft/test_prompt_bottleneck.py",
    "tests/trainer/test_fsdp.py",
    "tests/trainer/test_memory_plan.py",
)


def pytest_collection_modifyitems(config, items):
  missing = [p for p in LONGEST_FIRST
             if not os.path.exists(os.path.join(config.rootpath, p))]
  if missing:
    raise pytest.UsageError(
        f"tests/conftest.py LONGEST_FIRST names no file at {missing}")
  rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
  # A stable sort: each file's tests, and the other files, keep their order.
  items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0],
                                       len(rank)))
