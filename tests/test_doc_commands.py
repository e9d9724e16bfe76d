"""Every shell command example of README.md and docs/*.md runs, on the tiny
model and a tiny synthetic world, through the real entry point.

Every example runs to the end, chained, in the default tier: each `lta
train` trains the tiny base for a few steps, each `lta eval` decodes a few
examples, `lta report` reads what they wrote.

tests/doc_commands.py finds the examples and says what is rewritten to fit
a laptop (paths, model size, step counts; never a command, gin file, binding
or flag name). An example runs unless NOT_RUN says why not; a new example
in the docs is therefore run as soon as it is written. Examples run in the
order their outputs are needed (data, training, vector paths, evaluation,
sweeps, report), sharing one runs directory, as the docs chain them.
"""

import importlib
import os
import shutil
import subprocess

import pytest

from lta.cli import gin_flags as gin_cli
from lta.jobs import sweep as sweep_launcher
from lta.cli import main as cli
from lta.synthetic import world
from tests import doc_commands as dc
from tests.cli.conftest import _forget_tfds_data_dirs

# Each command parses gin flags in this process: start and end clean.
pytestmark = pytest.mark.usefixtures("clean_gin")

# key -> why the test does not run it.
NOT_RUN = {
    "README.md: make demo":
        "the main job itself (minutes); tests/test_pipeline_e2e.py runs "
        "lta pipeline on the tiny settings",
    "README.md: make test": "the test suite that runs this test",
    "docs/composition.md: python -m lta.languages.related --distances2 "
    "distances2.zip [--languages distances_languages.txt]":
        "a usage line ([...] marks an optional flag) for lang2vec's "
        "distances2.zip, a download; the --recompute example reads the same "
        "distances",
    **{f"docs/experiments.md: launch/tpu_vm.sh {verb}":
       "needs gcloud and a TPU VM; tests/launch/test_launchers.py runs it "
       "with --dry-run" for verb in (
           "create --name lta --zone us-central2-b --accelerator v4-8",
           "setup --name lta --zone us-central2-b --repo <lta git URL>",
           "run --name lta --zone us-central2-b -- train --gin_file=...",
           "logs --name lta --zone us-central2-b",
           "delete --name lta --zone us-central2-b")},
    "docs/experiments.md: launch/gpu.sh -- train --gin_file=...":
        "needs GPUs; tests/launch/test_launchers.py runs it with --dry-run",
    "docs/experiments.md: launch/gpu.sh --num_nodes 2 --node_rank 0 "
    "--coordinator host0:1234 -- train ...":
        "needs two GPU nodes; tests/launch/test_launchers.py runs it with "
        "--dry-run",
    "docs/experiments.md: launch/local.sh -- pipeline":
        "the main job on its defaults (minutes); tests/launch runs it with "
        "--dry-run, tests/test_pipeline_e2e.py the pipeline",
    "docs/experiments.md: launch/vector_paths.sh $RUNS --krona > "
    "$RUNS/vectors_krona.gin":
        "the same script as the line above it, for KronA runs, which no "
        "example trains",
    "docs/experiments.md: lta sweep --mode=local "
    "--workdir=$RUNS/study/full_en":
        "a sweep of full fine-tuning, the same sweep as the λ and "
        "best-single examples above it; tests/cli/test_study_recipes.py "
        "trains the study's files through lta train",
    "docs/experiments.md: lta eval "
    "--gin_file=experiments/eval_adapter_unseen.gin":
        "reads a model of the study sweep (<job> stands for a job name); "
        "the eval_adapter_unseen.gin example of step 5 runs",
    "docs/lr_miniature.md: lta lr-miniature "
    "--gin_file=experiments/lr_miniature.gin":
        "an experiment of tens of minutes (docs/lr_miniature.md); "
        "tests/test_lr_miniature.py (slow) runs this command on the tiny "
        "world",
    "docs/miniature.md: lta miniature --gin_file=experiments/miniature.gin":
        "a 12-minute experiment; tests/test_miniature.py (slow) runs this "
        "command on the tiny world",
    "docs/lr_miniature.md: pytest tests/test_lr_miniature.py -m \"slow or "
    "not slow\"":
        "runs tests (the slow tier's tests/test_lr_miniature.py)",
    "docs/miniature.md: pytest tests/test_miniature.py -m \"slow or not "
    "slow\"":
        "runs tests (the slow tier's tests/test_miniature.py)",
    "docs/miniature.md: lta miniature "
    "--gin_file=experiments/miniature_large.gin":
        "a 30-minute experiment; tests/test_miniature_large.py (slow) runs "
        "it with its options on the tiny world",
    "docs/miniature.md: lta miniature "
    "--gin_file=experiments/miniature_large.gin "
    "--gin_file=experiments/miniature_related.gin":
        "the larger miniature with Table 2 and Figure 2, longer still; "
        "tests/test_miniature_large.py (slow) runs it on the tiny world",
    "docs/miniature.md: lta miniature "
    "--gin_file=experiments/miniature_large.gin "
    "--gin_file=experiments/miniature_qa.gin":
        "the larger miniature with Table 4 (the QA task); "
        "tests/test_miniature_qa.py (slow) runs it on the tiny world",
    "docs/miniature.md: lta miniature "
    "--gin_file=experiments/miniature_large.gin "
    "--gin_file=experiments/miniature_qa.gin "
    "'--gin.MiniatureConfig.ablations=(\"space=delta\", \"lambdas=0.3\", "
    "\"lambdas=0.5\", \"lambdas=0.7\", \"lambdas=0.9\", "
    "\"language_steps=100\")'":
        "the run behind docs/miniature_options/ (an hour here, on the "
        "finished run's stages); tests/test_miniature_large.py (slow) runs "
        "ablations on the tiny world",
    "docs/scale.md: lta plan --gin_file=models/mt5_xxl.gin "
    "--gin_file=peft/lora_r4.gin":
        "compiles mT5-XXL's train step for 16 and 8 fake devices (tens of "
        "minutes here); tests/trainer/test_memory_plan.py runs lta plan on "
        "the tiny model for a 16-chip target",
    "docs/scale.md: lta plan --gin_file=models/mt5_xl.gin "
    "--gin_file=peft/lora_r4.gin":
        "compiles mT5-XL's train step for 16 fake devices (minutes here); "
        "tests/trainer/test_memory_plan.py runs lta plan on the tiny model "
        "for the two 16-chip targets",
    "docs/scale.md: lta plan --gin_file=models/qwen2_5_7b.gin "
    "--gin_file=peft/lora_r4.gin":
        "compiles Qwen2.5-7B's train step for 16 fake devices; "
        "tests/trainer/test_memory_plan.py parses this command and checks "
        "the decoder-only plan against the real compiled step on a tiny "
        "model",
}


def _stage(example: dc.Example) -> int:
  """Examples run in the order the docs chain them."""
  words = example.words
  order = ("prepare-data", "train", "vector_paths.sh", "eval", "sweep",
           "report")
  for i, word in enumerate(order):
    if any(w == word or w.endswith("/" + word) for w in words):
      return i + 1
  if words[0] == "for":
    return 2  # the training loops
  return 0


EXAMPLES = dc.examples()
COMMANDS = sorted(
    (e for e in EXAMPLES if not e.is_setting and e.key not in NOT_RUN),
    key=_stage)


def test_every_example_has_its_own_name_and_not_run_has_no_stale_entry():
  keys = [e.key for e in EXAMPLES]
  assert len(keys) == len(set(keys)), sorted(keys)
  assert not set(NOT_RUN) - set(keys), "NOT_RUN names no example any more"
  # The examples this test expects to find, so that an extractor that
  # finds nothing cannot pass.
  assert {"README.md: lta train --gin_file=models/mt5_base.gin "
          "--gin_file=peft/lora_r4.gin",
          "docs/experiments.md: lta prepare-data --tfds_data_dir=$DATA/tfds"
          } <= set(keys)


def _docs_env(tmp_path_factory):
  """The documented variables, pointing at a tiny world's raw data.

  $DATA holds what docs/experiments.md says to put there: XL-Sum release
  files, mC4 shards, TyDi QA's files and the vocabulary; `lta prepare-data`
  (an example) prepares them into $DATA/tfds.
  """
  root = tmp_path_factory.mktemp("docs")
  data = root / "data"
  # pt and uk borrow words from en and ru, so the world needs ru.
  world.generate_world(str(data), world.preset("tiny").with_languages(
      ["en", "ru", "pt", "uk"]))
  shutil.copytree(os.path.join(dc.REPO, "tests", "fixtures", "data",
                               "tydiqa"), data / "tydiqa")
  (data / "mt5").mkdir()
  shutil.copy(os.path.join(dc.REPO, "tests", "fixtures", "spm",
                           "tiny_en_ru.model"),
              data / "mt5" / "sentencepiece.model")
  for name in ("runs", "tmp"):
    (root / name).mkdir()
  return {"PATH": os.environ["PATH"], "HOME": str(root),
          "MT5_BASE": dc.TINY_BASE, "DATA": str(data),
          "RUNS": str(root / "runs"), "TMP": str(root / "tmp")}


@pytest.fixture(scope="module")
def docs_env(tmp_path_factory):
  return _docs_env(tmp_path_factory)


def _settings(example: dc.Example, env: dict[str, str]):
  """(environment, flags) that the docs' settings above the example add."""
  env, flags = dict(env), []
  for setting in EXAMPLES:
    if setting.path != example.path or setting.line > example.line or (
        not setting.is_setting):
      continue
    text = dc.rewrite(setting.text)
    if setting.words[0] == "export":
      name, value = dc.shell_words(text, env)[1].split("=", 1)
      env[name] = value
    else:
      flags += dc.shell_words(text, env)[1:]
  return env, flags


def _run_in_process(argv: list[str], env: dict[str, str]) -> int:
  """`lta ...` or `python -m MODULE ...` through its main(), in this
  process."""
  _forget_tfds_data_dirs()
  if argv[0] == "lta":
    command = argv[1]
  else:
    assert argv[:2] == ["python", "-m"], argv
    command = {m: c for c, m in cli.COMMANDS.items()}.get(argv[2])
    if command is None:
      result = importlib.import_module(argv[2]).main(argv[3:])
      return 0 if result is None or not isinstance(result, int) else result
  args = argv[2:] if argv[0] == "lta" else argv[3:]
  if command in ("train", "eval") and "TFDS_DATA_DIR" in env and not any(
      a.startswith("--tfds_data_dir") for a in args):
    # TFDS reads $TFDS_DATA_DIR once, when imported; in this process the
    # exported value reaches it as --tfds_data_dir would.
    gin_cli.use_tfds_data_dir(env["TFDS_DATA_DIR"])
  try:
    return cli.main([command, *args])
  finally:
    _forget_tfds_data_dirs()


def _tiny(argv: list[str], flags: list[str]) -> list[str]:
  """argv with the docs' settings and the tiny sizes appended."""
  command = argv[1] if argv[0] == "lta" else argv[2].rsplit(".", 1)[-1]
  if command in ("train", "eval"):
    names = {a.split("=", 1)[0] for a in argv}
    argv = argv + [f for f in flags if f.split("=", 1)[0] not in names]
  return argv + dc.appended_flags(argv)


def _run_command(text: str, env: dict[str, str], flags: list[str]) -> None:
  if text.split()[0] not in ("lta", "python"):  # a launch/ script: a shell
    proc = subprocess.run(["bash", "-c", text], env=env, cwd=dc.REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return
  argv = dc.shell_words(text, env)
  sweep = argv[:2] == ["lta", "sweep"] and dc.SWEEP_LOCAL in argv
  if sweep:
    argv[argv.index(dc.SWEEP_LOCAL)] = "--mode=print"
  assert _run_in_process(_tiny(argv, flags), env) == 0, argv
  if sweep:  # one grid job, as the sweep would have run it: the first
    # whose inputs were trained here (this test trains en's task vector)
    workdir = next(a.split("=", 1)[1] for a in argv
                   if a.startswith("--workdir="))
    job = next(j for j in sweep_launcher.read_jobs(workdir)
               if j.name != sweep_launcher.BASELINE_JOB and all(
                   os.path.exists(v) for v in j.bindings.values()
                   if isinstance(v, str) and v.startswith(env["RUNS"])))
    assert _run_in_process(_tiny(job.argv, flags), env) == 0, job.argv
    assert os.path.exists(os.path.join(job.output_dir, "scores.json"))


def _run_example(example: dc.Example, docs_env: dict[str, str]):
  env, flags = _settings(example, docs_env)
  text = dc.rewrite(example.text)
  loop = dc.loop_runs(text)
  if loop is None:
    _run_command(text, env, flags)
    return
  variable, values, body = loop
  assert values, f"{example.key}: the loop runs for none of its values here"
  for value in values:
    _run_command(body, {**env, variable: value}, flags)


@pytest.mark.parametrize("example", COMMANDS, ids=lambda e: e.key)
def test_example_runs_to_the_end(example, docs_env):
  _run_example(example, docs_env)
