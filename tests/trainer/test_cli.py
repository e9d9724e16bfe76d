"""Gin flags and run files of `lta train` (its process: test_kill_resume.py)."""

import os

import gin
import pytest

from lta.cli import gin_flags as gin_cli
from lta.cli import main as cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TINY_GIN = os.path.join(REPO, "tests", "trainer", "tiny_run.gin")
# The trainer's run files (other runs/*.gin belong to other entry points).
RUN_FILES = [os.path.join(gin_cli.GIN_DIR, "runs", name) for name in (
    "train_adapter.gin", "full_finetune.gin", "intermediate_tuning.gin")]
REQUIRED = {
    "MODEL_DIR": '"/tmp/lta_test_model_dir"',
    "MIXTURE_OR_TASK_NAME": '"xlsum.en"',
    "TASK_FEATURE_LENGTHS": "{'inputs': 512, 'targets': 64}",
    "TRAIN_STEPS": "5000",
    "INITIAL_CHECKPOINT_PATH": '"/path/to/mt5"',
    "INITIAL_ADAPTER_PATH": '"/path/to/adapter"',
}


pytestmark = pytest.mark.usefixtures("clean_gin")


def test_parse_flags_t5x_style():
  flags = gin_cli.parse_flags([
      "--gin_file=runs/train_adapter.gin", "--gin_file", "peft/lora_r4.gin",
      "--gin.MODEL_DIR=\"/tmp/x\"", "--gin_bindings=TRAIN_STEPS = 3",
      "--gin_search_paths=/a,/b"])
  assert flags.files == ["runs/train_adapter.gin", "peft/lora_r4.gin"]
  assert flags.bindings == ['MODEL_DIR = "/tmp/x"', "TRAIN_STEPS = 3"]
  assert flags.search_paths == ["/a", "/b"]


@pytest.mark.parametrize("argv,match", [
    (["--model_dir=/tmp"], "Unknown flag '--model_dir=/tmp'"),
    (["--gin.MODEL_DIR"], "expected --gin.NAME=VALUE"),
    (["--gin_file"], "needs a value"),
])
def test_bad_flags_are_named(argv, match):
  with pytest.raises(ValueError, match=match):
    gin_cli.parse_flags(argv)


def test_every_run_file_parses_with_its_required_bindings():
  for path in RUN_FILES:
    gin.clear_config()
    text = open(path).read()
    assert "lta train" in text, f"{path} states no command that runs it"
    declared = set(gin_cli._REQUIRED_RE.findall(text))
    flags = gin_cli.GinFlags(
        files=["peft/lora_r4.gin", path],
        bindings=[f"{k} = {v}" for k, v in REQUIRED.items()
                  if k in declared or k != "INITIAL_ADAPTER_PATH"])
    gin_cli.configure(flags)
    assert gin.query_parameter("train.train_steps") is not None
    assert gin_cli.missing_required() == []


@pytest.mark.parametrize("path", RUN_FILES)
def test_missing_required_binding_is_named(path):
  # Only intermediate tuning uses INITIAL_ADAPTER_PATH (a macro no loaded
  # file uses is an error).
  uses_adapter = path.endswith("intermediate_tuning.gin")
  bindings = [f"{k} = {v}" for k, v in REQUIRED.items() if k != "MODEL_DIR"
              and (uses_adapter or k != "INITIAL_ADAPTER_PATH")]
  with pytest.raises(ValueError, match=r"not set: MODEL_DIR \("):
    gin_cli.configure(gin_cli.GinFlags(files=[path], bindings=bindings))


def test_unknown_parameter_is_an_error():
  with pytest.raises(ValueError, match="doesn't have a parameter named "
                     "'bogus'"):
    gin_cli.configure(gin_cli.GinFlags(files=[TINY_GIN],
                                       bindings=["train.bogus = 1"]))


def test_missing_gin_file_is_named():
  with pytest.raises(FileNotFoundError, match="runs/nope.gin"):
    gin_cli.configure(gin_cli.GinFlags(files=["runs/nope.gin"]))


def test_adapter_run_needs_an_adapter_file(capsys):
  argv = ["--gin_file=runs/train_adapter.gin"] + [
      f"--gin.{k}={v}" for k, v in REQUIRED.items()
      if k != "INITIAL_ADAPTER_PATH"]
  assert cli.main(["train", *argv]) == 2
  assert "adapter config is required" in capsys.readouterr().err


def test_cli_dispatch(capsys):
  assert cli.main(["nope"]) == 2
  assert "unknown command 'nope'" in capsys.readouterr().err
  assert cli.main(["--help"]) == 0
  assert "train" in capsys.readouterr().out
