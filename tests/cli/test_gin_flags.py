"""Gin flags: the modules bindings name, macros nobody uses, --tfds_data_dir."""

import os
import subprocess
import sys

import gin
import pytest

from lta import errors
from lta.cli import gin_flags as gin_cli
from tests.cli import error_cases


pytestmark = pytest.mark.usefixtures("clean_gin")


@pytest.mark.parametrize("binding,modules", [
    ("lta.vocab.get_vocabulary.path = 'x'", ["lta.data.vocab", "lta"]),
    ("lta_tasks.mc4_local_dir.path = 'x'", ["lta_tasks"]),
    ("scope/lta.partitioning.MeshConfig.model = 2",
     ["lta.partitioning", "lta"]),
    ("run_eval.output_dir = 'x'", []),
    ("LAMBDA = 0.5", []),
    ("import lta.data.vocab", []),
])
def test_binding_modules(binding, modules):
  assert gin_cli.binding_modules(binding) == modules


def test_a_binding_imports_its_module_in_a_fresh_process():
  # lta.partitioning is imported by nothing but the binding that names it.
  code = ("import sys, gin; from lta import gin_cli; "
          "assert 'lta.partitioning' not in sys.modules; "
          "gin_cli.configure(gin_cli.parse_flags("
          "['--gin.lta.partitioning.MeshConfig.model=2'])); "
          "from lta import partitioning; print(partitioning.MeshConfig().model)")
  proc = subprocess.run([sys.executable, "-c", code], cwd=error_cases.REPO,
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "2"


def test_a_macro_used_by_a_file_is_accepted_and_wins():
  flags = gin_cli.parse_flags([f"--gin_file={error_cases.TINY_GIN}",
                               '--gin.MODEL_DIR="/tmp/x"',
                               "--gin.TRAIN_STEPS=7",
                               "--gin.LEARNING_RATE=0.5"])
  gin_cli.configure(flags)
  assert gin.query_parameter("%LEARNING_RATE") == 0.5
  assert gin.query_parameter("train.train_steps").scoped_selector == (
      "TRAIN_STEPS/gin.macro")


def test_a_macro_typo_in_gin_bindings_is_named_too():
  flags = gin_cli.parse_flags([f"--gin_file={error_cases.TINY_GIN}",
                               '--gin.MODEL_DIR="/tmp/x"',
                               "--gin.TRAIN_STEPS=7",
                               "--gin_bindings=TRAIN_STPES = 8"])
  with pytest.raises(errors.ConfigError,
                     match=r"^--gin_bindings='TRAIN_STPES = 8': no loaded gin "
                     r"file uses the macro %TRAIN_STPES \(did you mean "
                     r"'TRAIN_STEPS'.*\?\)$"):
    gin_cli.configure(flags)


def test_a_gin_file_mistake_names_file_and_line(tmp_path):
  path = tmp_path / "bad.gin"
  path.write_text("# A run file.\n\nMODEL_DIR = /tmp/x\n")
  with pytest.raises(errors.ConfigError,
                     match=rf"^{path}:3: Unable to parse value in "
                     r"'MODEL_DIR = /tmp/x'$"):
    gin_cli.configure(gin_cli.GinFlags(files=[str(path)]))


def test_tfds_data_dir_reads_prepared_data_without_a_download_banner(
    tmp_path, capfd):
  """XL-Sum prepared from local release files, then read through the flag."""
  import seqio  # pylint: disable=g-import-not-at-top
  import lta_tasks  # pylint: disable=g-import-not-at-top
  fixtures = os.path.join(error_cases.REPO, "tests", "fixtures", "data",
                          "xlsum")
  lta_tasks.xlsum_builder.prepare(["en"], str(tmp_path), manual_dir=fixtures)
  out, _ = capfd.readouterr()
  assert "Downloading and preparing" not in out and "downloaded" not in out
  gin_cli.parse_and_configure(
      [f"--gin_file={error_cases.TINY_GIN}", '--gin.MODEL_DIR="/tmp/x"',
       "--gin.TRAIN_STEPS=1", "--tfds_data_dir", str(tmp_path)],
      reads_tfds=True)
  source = seqio.get_mixture_or_task("xlsum.en").source
  assert source.num_input_examples("train") == 2  # english_train.jsonl
