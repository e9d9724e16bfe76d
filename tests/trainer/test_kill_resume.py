"""`lta train` as a real process: killed, stopped, resumed, bit-identical.

Every run trains the tiny fixture task with model and adapter dropout on, so
a resume must restore the dropout rng as well as the adapter, its optimizer
state and the data position. One uninterrupted run is the reference; each
interrupted run must end identical to it, bit for bit, on every leaf both
ways: the exported adapter, and the last checkpoint's step, trainable tree,
optimizer state, rng and data record.
"""

import os
import signal
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lta.checkpoints import orbax_ckpt
from lta.adapters import adapter_io
from lta.adapters.tree import flatten_tree
from tests import cli_run
from tests.multiprocess import processes

TINY_GIN = os.path.join(cli_run.REPO, "tests", "trainer", "tiny_run.gin")
STEPS = 16
FLAGS = [f"--gin_file={TINY_GIN}", f"--gin.TRAIN_STEPS={STEPS}",
         "--gin.T5Config.dropout_rate=0.1",
         "--gin.AdapterConfig.dropout_rate=0.1",
         "--gin.train.checkpoint_period=4"]
TMP_SUFFIX = ".orbax-checkpoint-tmp"


class TrainProcess(processes.Process):
  """`python -m lta.cli.train` in the background, its output collected."""

  def __init__(self, model_dir: str):
    self.model_dir = model_dir
    super().__init__([sys.executable, "-m", "lta.cli.train", *FLAGS,
                      f'--gin.MODEL_DIR="{model_dir}"'],
                     processes.process_env(0, 1, port=0))

  def finish(self, returncode: int, timeout: float = 600) -> str:
    assert self.wait(time.time() + timeout) == returncode, self.output
    return self.output

  def kill_during_a_save(self, timeout: float = 600) -> list[str]:
    """SIGKILL while a checkpoint is half written; its temporary dirs.

    The process is frozen (SIGSTOP) as soon as a temporary step directory
    shows up; if the save is still unfinished then, it is killed, otherwise
    it goes on to its next save.
    """
    directory = os.path.join(self.model_dir, orbax_ckpt.SUBDIR)
    deadline = time.time() + timeout
    while time.time() < deadline and self.proc.poll() is None:
      if _tmp_dirs(directory):
        os.kill(self.proc.pid, signal.SIGSTOP)
        unfinished = _tmp_dirs(directory)
        if unfinished:
          os.kill(self.proc.pid, signal.SIGKILL)
          self.finish(-signal.SIGKILL)
          return unfinished
        os.kill(self.proc.pid, signal.SIGCONT)
      time.sleep(0.001)
    raise AssertionError(f"no save caught in progress:\n{self.output}")


def _tmp_dirs(directory: str) -> list[str]:
  if not os.path.isdir(directory):
    return []
  return [d for d in os.listdir(directory) if TMP_SUFFIX in d]


def _steps(model_dir: str) -> list[int]:
  directory = os.path.join(model_dir, orbax_ckpt.SUBDIR)
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The uninterrupted run; it trains while the first test starts its own."""
  run = TrainProcess(str(tmp_path_factory.mktemp("reference")))

  def finished() -> str:
    assert f"Finished at step {STEPS}" in run.finish(0)
    return run.model_dir

  return finished


def _flat(tree) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _assert_bitwise_equal(got: dict, want: dict, what: str):
  assert sorted(got) == sorted(want), what
  for key, value in want.items():
    assert got[key].dtype == value.dtype, f"{what} {key}"
    assert got[key].shape == value.shape, f"{what} {key}"
    assert got[key].tobytes() == value.tobytes(), f"{what} {key}"


def _last_checkpoint(model_dir: str):
  """(step, numpy state items, data record, run record) of the last step."""
  ckpt = orbax_ckpt.TrainCheckpointer(model_dir)
  try:
    step = ckpt.latest_step()
    target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                          ckpt.state_metadata(step))
    state = ckpt.manager.restore(step, args=ocp.args.Composite(**{
        orbax_ckpt.STATE: ocp.args.StandardRestore(target)}))[
            orbax_ckpt.STATE]
    data, run = ckpt.read_json(step)
  finally:
    ckpt.close()
  return step, state, data, run


def _without_model_dir(run: dict) -> dict:
  manifest = dict(run["manifest"])
  manifest["provenance"] = {k: v for k, v in manifest["provenance"].items()
                            if k != "model_dir"}
  return {**run, "manifest": manifest}


def _assert_same_as_reference(model_dir: str, reference_dir: str):
  got, got_manifest = adapter_io.load_adapter(
      os.path.join(model_dir, "adapter"))
  want, want_manifest = adapter_io.load_adapter(
      os.path.join(reference_dir, "adapter"))
  _assert_bitwise_equal(flatten_tree(got),
                        flatten_tree(want), "exported adapter")
  assert got_manifest.config == want_manifest.config
  assert got_manifest.base_model_fingerprint == (
      want_manifest.base_model_fingerprint)
  step, state, data, run = _last_checkpoint(model_dir)
  want_step, want_state, want_data, want_run = _last_checkpoint(
      reference_dir)
  assert step == want_step == STEPS
  assert set(state) == {"step", "trainable", "opt_state", "rng"}
  _assert_bitwise_equal(_flat(state), _flat(want_state), "last checkpoint")
  assert data == want_data
  assert _without_model_dir(run) == _without_model_dir(want_run)


def test_sigkill_mid_step_and_mid_save_then_resume_is_exact(reference,
                                                            tmp_path):
  model_dir = str(tmp_path)
  first = TrainProcess(model_dir)
  first.wait_for_line(f"step 5/{STEPS}")  # between the saves of 4 and 8
  first.proc.kill()
  first.finish(-signal.SIGKILL)
  assert not os.path.exists(os.path.join(model_dir, "adapter"))
  committed = _steps(model_dir)

  second = TrainProcess(model_dir)
  unfinished = second.kill_during_a_save()
  if committed:
    assert f"Resuming from {model_dir}/checkpoints/{committed[-1]} " in (
        second.output)
  # The half-written step is not a checkpoint: the next run resumes from
  # the one before it, and clears the leftover.
  half_written = int(unfinished[0].split(".")[0])
  assert half_written not in _steps(model_dir)
  before = max((s for s in _steps(model_dir) if s < half_written),
               default=None)

  last = TrainProcess(model_dir)
  out = last.finish(0)
  if before is not None:
    assert f"Resuming from {model_dir}/checkpoints/{before} at its saved " \
        "input position" in out
  assert f"Finished at step {STEPS}" in out
  assert not _tmp_dirs(os.path.join(model_dir, orbax_ckpt.SUBDIR))
  _assert_same_as_reference(model_dir, reference())


def test_sigterm_and_ctrl_c_checkpoint_and_exit_75(reference, tmp_path):
  model_dir = str(tmp_path)
  for sig in (signal.SIGTERM, signal.SIGINT):
    run = TrainProcess(model_dir)
    run.wait_for_line("step ", after=run.wait_for_line("trainer-test:"))
    run.proc.send_signal(sig)
    out = run.finish(75)  # EX_TEMPFAIL, as documented
    name = signal.Signals(sig).name
    step = _steps(model_dir)[-1]
    assert (f"{name}: saved a checkpoint at step {step} in {model_dir}/"
            "checkpoints; run the same command to resume") in out
    assert f"{name}: saving a checkpoint after this step" in out
    assert "Traceback" not in out and "Finished" not in out
    assert not os.path.exists(os.path.join(model_dir, "adapter"))
  out = TrainProcess(model_dir).finish(0)
  assert f"Finished at step {STEPS}" in out
  _assert_same_as_reference(model_dir, reference())
