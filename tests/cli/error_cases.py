"""How to make each mistake of docs/errors.md through a real entry point.

Keyed by the row's first cell ("Mistake"). A case runs `lta` in this
process (`cli.main(argv)`), or where the message must come from a fresh
process (what is imported, the network), as `python -m lta.cli.main`;
`offline` runs that process without a network (a Linux network
namespace). "{tmp}" in an argument is an empty directory; with
`adapters`, {tmp}/adapters holds the adapters of `write_adapters`. To
document a new message: add its row to docs/errors.md and its case here.
"""

import dataclasses
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TINY_GIN = os.path.join(REPO, "tests", "trainer", "tiny_run.gin")
MISSING = "/nonexistent/lta"  # never created
# The tiny trainer run of tests/trainer, all required bindings given.
TINY_TRAIN = ["train", f"--gin_file={TINY_GIN}",
              f'--gin.MODEL_DIR="{MISSING}/model"', "--gin.TRAIN_STEPS=2"]
EVAL = ["eval", "--gin_file=runs/eval.gin",
        f'--gin.run_eval.output_dir="{MISSING}/eval"',
        f'--gin.run_eval.base_checkpoint="{MISSING}/mt5-base"',
        "--gin.run_eval.tasks=['xlsum.pt']",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 512, 'targets': 64}"]
MERGE = ["merge", "--gin_file=runs/merge.gin",
         f'--gin.run_merge.output_dir="{MISSING}/merged"',
         '--gin.run_merge.composition="task_only"',
         '--gin.run_merge.target="pt"',
         f"--gin.run_merge.task_vectors={{'en': '{MISSING}/task_en'}}"]
PLAN = ["plan", "--gin_file=models/tiny.gin", "--gin_file=peft/lora_r4.gin",
        "--gin_file=runs/plan.gin",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 8, 'targets': 4}"]
GS_VOCAB = "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"


@dataclasses.dataclass(frozen=True)
class Case:
  argv: list[str]
  subprocess: bool = False
  offline: bool = False
  adapters: bool = False


# name -> (task, language, base model fingerprint) of an adapter in lta's
# format; "damaged" is task_en with its tensors file cut short.
ADAPTERS = {"task_en": ("xlsum", "en", "sha256:base-a"),
            "lang_en": ("mc4_prefix_lm", "en", "sha256:base-a"),
            "lang_pt": ("mc4_prefix_lm", "pt", "sha256:base-a"),
            "lang_de": ("mc4_prefix_lm", "de", "sha256:base-a"),
            "lang_pt_other_base": ("mc4_prefix_lm", "pt", "sha256:base-b"),
            "damaged": ("xlsum", "en", "sha256:base-a")}


def write_adapters(out_dir: str) -> None:
  """The adapters of ADAPTERS, small random LoRA trees, under out_dir."""
  # pylint: disable=g-import-not-at-top  (cases are listed without JAX)
  import numpy as np
  from lta.adapters import adapter_io
  from tests.arithmetic.random_adapters import make_adapter
  rng = np.random.default_rng(0)
  for name, (task, language, base) in ADAPTERS.items():
    adapter = make_adapter(rng, task=task, language=language, base=base)
    path = os.path.join(out_dir, name)
    adapter_io.save_adapter(path, adapter.tree, adapter.manifest)
  tensors = [f for f in os.listdir(os.path.join(out_dir, "damaged"))
             if f.endswith(".safetensors")]
  for name in tensors:
    with open(os.path.join(out_dir, "damaged", name), "r+b") as f:
      f.truncate(os.path.getsize(f.name) // 2)


A = "{tmp}/adapters"
COMPOSE = ["merge", "--gin_file=runs/merge.gin",
           '--gin.run_merge.output_dir="{tmp}/merged"',
           '--gin.run_merge.composition="lang_task_add_subtract"',
           '--gin.run_merge.target="pt"', "--gin.run_merge.sources=['en']",
           f"--gin.run_merge.task_vectors={{'en': '{A}/task_en'}}"]
LANGS = ("--gin.run_merge.language_vectors="
         f"{{'en': '{A}/lang_en', 'pt': '{A}/%s'}}")


CASES = {
    "An unknown command":
        Case(["trian"], subprocess=True),
    "An unknown flag":
        Case([*TINY_TRAIN, "--model_dir=/tmp/run"]),
    "A gin file that is not there":
        Case(["train", "--gin_file=runs/train.gin"]),
    "A string without quotes":
        Case([*TINY_TRAIN, "--gin.MODEL_DIR=/tmp/x"]),
    "An unfinished value":
        Case([*TINY_TRAIN, "--gin.TASK_FEATURE_LENGTHS={'inputs': 32"]),
    "A misspelt macro":
        Case(["eval", "--gin_file=runs/eval.gin", "--gin.LAMDA=[0.3,0.5,0.7]"]),
    "A misspelt configurable":
        Case([*TINY_TRAIN, "--gin.make_optimiser.clip_norm=0.5"]),
    "A misspelt parameter":
        Case([*EVAL, '--gin.run_eval.outptu_dir="/tmp/eval"']),
    "A required binding left out":
        Case(TINY_TRAIN[:2] + TINY_TRAIN[3:]),
    "No output directory":
        Case(EVAL[:2] + EVAL[3:]),
    "No adapter file":
        Case(["train", "--gin_file=runs/train_adapter.gin",
              f'--gin.MODEL_DIR="{MISSING}/model"',
              '--gin.MIXTURE_OR_TASK_NAME="xlsum.en"',
              "--gin.TASK_FEATURE_LENGTHS={'inputs': 512, 'targets': 64}",
              "--gin.TRAIN_STEPS=5000", "--gin.INITIAL_CHECKPOINT_PATH=None"]),
    "A task that is not registered":
        Case([*TINY_TRAIN, '--gin.MIXTURE_OR_TASK_MODULE="lta_tasks"',
              '--gin.MIXTURE_OR_TASK_NAME="xlsum.enn"']),
    "Data that is not prepared":
        Case([*TINY_TRAIN, '--gin.MIXTURE_OR_TASK_MODULE="lta_tasks"',
              '--gin.MIXTURE_OR_TASK_NAME="xlsum.en"',
              "--tfds_data_dir={tmp}"]),
    "A base checkpoint that is not there":
        Case([*TINY_TRAIN, '--gin.INITIAL_CHECKPOINT_PATH="/data/mt5-base"']),
    "A vocabulary that is not there":
        Case([*TINY_TRAIN, "--gin.lta.vocab.get_vocabulary.path="
              '"/data/mt5/sentencepiece.model"']),
    "A gs:// vocabulary without a network":
        Case([*EVAL, f'--gin.lta.vocab.get_vocabulary.path="{GS_VOCAB}"'],
             subprocess=True, offline=True),
    "A TFDS data dir that is not there":
        Case([*TINY_TRAIN, "--tfds_data_dir=/data/tfds"]),
    "--tfds_data_dir for a command that reads no prepared data":
        Case([*MERGE, "--tfds_data_dir=/data/tfds"]),
    "The baseline alone, with no composition":
        Case([*EVAL, '--gin.run_eval.baseline="only"']),
    "Collecting a sweep that was never expanded":
        Case(["sweep", "--mode=collect", f"--workdir={MISSING}/sweep"]),
    "The old lta sweep --base_command":
        Case(["sweep", f"--workdir={MISSING}/sweep",
              "--base_command=lta eval --gin_file=runs/eval.gin",
              "--grid=LAMBDA=[0.5]"]),
    "λ outside [0, 1]":
        Case([*COMPOSE, LANGS % "lang_pt", "--gin.run_merge.lam=1.5"],
             adapters=True),
    "A composition that does not exist":
        Case([*COMPOSE, LANGS % "lang_pt",
              '--gin.run_merge.composition="lang_task_add_substract"'],
             adapters=True),
    "A language vector of another language":
        Case([*COMPOSE, LANGS % "lang_de"], adapters=True),
    "Adapters trained on different base models":
        Case([*COMPOSE, LANGS % "lang_pt_other_base"], adapters=True),
    "A damaged adapter file":
        Case([*COMPOSE[:-1],
              f"--gin.run_merge.task_vectors={{'en': '{A}/damaged'}}",
              LANGS % "lang_pt"], adapters=True),
    "Merging into a directory that is not empty":
        Case([*COMPOSE[:2], '--gin.run_merge.output_dir="{tmp}/adapters"',
              *COMPOSE[3:], LANGS % "lang_pt"], adapters=True),
    "A value a configurable does not accept":
        Case([*TINY_TRAIN, '--gin.make_optimizer.name="adamv"']),
    "An unknown lta plan target":
        Case([*PLAN, "--gin.TARGETS=['v4-23']"]),
    "A model axis that does not divide the target's chips":
        Case([*PLAN, "--gin.MODEL_AXIS_SIZES=[3]"]),
}
