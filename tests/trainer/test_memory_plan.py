"""`lta plan`: the abstract (ahead-of-time) compile of lta train's step
accounts for the memory its real compile does; the CLI's mistakes are one
line each.

The real step here is the one `lta train` runs (steps.init_variables,
create_state, jit_train_step) on concrete sharded arrays, compiled after
jax.clear_caches() so that nothing is shared with the plan's compile, and
executed once.
"""

import flax.linen as nn
import jax
import numpy as np
import pytest

from lta import partitioning
from lta.adapters import trainable as trainable_lib
from lta.adapters.config import AdapterConfig
from lta.cli import main as cli
from lta.models import families
from lta.models.contract import DecodingConfig
from lta.models.decoder.config import DecoderConfig
from lta.models.mt5.config import T5Config
from lta.train import memory_plan
from lta.train import optimizers
from lta.train import steps

# The smallest mT5-architecture model with a model axis of 2 to shard.
CONFIG = T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_heads=2,
                  num_encoder_layers=1, num_decoder_layers=1,
                  relative_attention_num_buckets=8,
                  relative_attention_max_distance=16, dropout_rate=0.0,
                  name="plan-test")
LENGTHS = {"inputs": 8, "targets": 4}
BATCH = 4


def _shard_bytes(tree) -> int:
  """What one device holds of a tree of sharded shapes (device 0's part)."""
  return sum(int(np.prod(x.sharding.shard_shape(x.shape))) * x.dtype.itemsize
             for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def setup():
  model = families.build_model(CONFIG, AdapterConfig(kind="lora", rank=2,
                                                     alpha=2.0))
  mesh = partitioning.make_mesh(partitioning.MeshConfig(data=2, model=2),
                                jax.devices()[:4])
  # AdamW: every state leaf is an input of the step (Adafactor's (1,)
  # placeholders for unfactored moments are dropped by jit as unused).
  return (model, optimizers.make_optimizer(name="adamw"),
          trainable_lib.resolve_pattern("adapters"), mesh,
          partitioning.LOGICAL_AXIS_RULES)


# The rows docs/scale.md plans: mT5 and decoder-only bases, the default
# (tensor-parallel) and FSDP rules, one step or microbatches.
DECODER_CONFIG = DecoderConfig(vocab_size=64, hidden_size=16,
                               intermediate_size=32, num_layers=1,
                               num_heads=2, num_kv_heads=2, head_dim=8,
                               bos_token_id=2, name="plan-test")


@pytest.mark.parametrize("config,rules_name,num_microbatches", [
    (CONFIG, "tensor_parallel", 1),
    (CONFIG, "fsdp", 2),
    (DECODER_CONFIG, "tensor_parallel", 2),
], ids=["mt5", "mt5-fsdp-microbatches", "decoder-microbatches"])
def test_planned_train_step_accounts_as_the_real_compiled_step(
    setup, config, rules_name, num_microbatches):
  _, optimizer, pattern, mesh, _ = setup
  model = families.build_model(config, AdapterConfig(kind="lora", rank=2,
                                                     alpha=2.0))
  rules = partitioning.MeshConfig(rules=rules_name).rules
  planned = memory_plan.plan_train_step(model, pattern, optimizer, mesh,
                                        rules, BATCH, LENGTHS,
                                        num_microbatches)
  # The plan's arguments are exactly one device's shards of state + batch.
  _, state_sh = steps.state_shardings(model, pattern, optimizer, mesh, rules)
  abstract_state = memory_plan.abstract_train_state(model, pattern,
                                                    optimizer, state_sh)
  batch_sh = partitioning.batch_sharding(mesh)
  abstract_batch = memory_plan.abstract_batch(model, BATCH, LENGTHS,
                                              batch_sh, "train")
  assert planned.arguments == (_shard_bytes(abstract_state) +
                               _shard_bytes(abstract_batch))
  assert planned.temporaries > 0 and planned.aliased > 0

  jax.clear_caches()  # the real step compiles from scratch
  var_sh, state_sh = steps.state_shardings(model, pattern, optimizer, mesh,
                                           rules)
  rng = np.random.default_rng(0)
  batch = {k: jax.device_put(
      rng.integers(1, config.vocab_size, s.shape).astype(np.int32), batch_sh)
           for k, s in abstract_batch.items()}
  with partitioning.activated(mesh, rules):
    variables = steps.init_variables(model, var_sh, seed=0)
    state = steps.create_state(variables, pattern, optimizer, var_sh,
                               state_sh, seed=0)
    compiled = steps.jit_train_step(model, optimizer, state_sh, mesh,
                                    num_microbatches).lower(
                                        state, batch).compile()
    real = memory_plan.MemoryStats.of(compiled)
    new_state, metrics = compiled(state, batch)
  assert int(new_state.step) == 1 and np.isfinite(float(metrics["loss"]))
  # Tolerance: none. XLA compiles the same program to the same buffers.
  assert planned == real


def test_planned_decode_step_holds_the_variables_and_prompts(setup):
  model, _, _, mesh, rules = setup
  planned = memory_plan.plan_decode_step(
      model, mesh, rules, BATCH, LENGTHS,
      DecodingConfig(max_decode_length=4))
  boxed = jax.eval_shape(model.init_variables, jax.random.PRNGKey(0))
  variables = jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      nn.meta.unbox(boxed),
      partitioning.logical_to_sharding(boxed, mesh, rules))
  prompts = memory_plan.abstract_batch(
      model, BATCH, LENGTHS, partitioning.batch_sharding(mesh), "decode")
  assert planned.arguments == _shard_bytes(variables) + _shard_bytes(prompts)
  assert planned.outputs == BATCH // 2 * 4 * 4  # int32 ids, per data shard
  assert planned.temporaries > 0


def test_decoder_only_full_finetuning_plan_holds_its_state_and_rows(setup):
  _, optimizer, _, mesh, rules = setup
  model = families.build_model(DECODER_CONFIG)
  pattern = trainable_lib.resolve_pattern("full")
  planned = memory_plan.plan_train_step(model, pattern, optimizer, mesh,
                                        rules, BATCH, LENGTHS)
  _, state_sh = steps.state_shardings(model, pattern, optimizer, mesh, rules)
  state = memory_plan.abstract_train_state(model, pattern, optimizer,
                                           state_sh)
  assert not jax.tree.leaves(state.frozen)  # every parameter trains
  batch = memory_plan.abstract_batch(
      model, BATCH, LENGTHS, partitioning.batch_sharding(mesh), "train")
  assert {k: v.shape for k, v in batch.items()} == {
      k: (BATCH, 12) for k in ("decoder_input_tokens", "decoder_target_tokens",
                               "decoder_loss_weights")}
  assert planned.arguments == _shard_bytes(state) + _shard_bytes(batch)


def test_mesh_shapes_use_every_chip():
  v4 = memory_plan.TARGETS["v4-32"]
  assert memory_plan.mesh_shapes(v4, (1, 4, 16)) == [(16, 1), (4, 4), (1, 16)]


def test_fits_compares_the_total_with_the_chip():
  h100 = memory_plan.TARGETS["8xH100"]
  stats = memory_plan.MemoryStats(arguments=60 * memory_plan.GIB,
                                  outputs=60 * memory_plan.GIB,
                                  aliased=59 * memory_plan.GIB,
                                  temporaries=18 * memory_plan.GIB)
  assert stats.total == 79 * memory_plan.GIB
  row = memory_plan.PlanRow(h100, "train", 8, 1, 32, stats, 0.0)
  assert row.fits
  assert not memory_plan.PlanRow(memory_plan.TARGETS["v4-32"], "train", 16,
                                 1, 32, stats, 0.0).fits


# Kronecker here (LoRA and full fine-tuning above); factors that divide
# tiny.gin's 64 x 48 attention kernels.
PLAN = ["plan", "--gin_file=models/tiny.gin",
        "--gin_file=peft/krona_32x16.gin",
        "--gin.AdapterConfig.kron_factors=(4, 4)", "--gin_file=runs/plan.gin",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 8, 'targets': 4}"]


@pytest.mark.usefixtures("clean_gin")
def test_lta_plan_reruns_itself_with_the_targets_chips_and_prints_the_fit(
    capfd):
  # This session has 8 fake devices and v4-32 has 16 chips: lta plan
  # re-runs in a fresh process, which makes 16 CPU devices before JAX
  # starts, as `lta plan` does on a laptop or a GPU/TPU host.
  # v5e-16 has as many chips: its rows reuse v4-32's compiles.
  code = cli.main(PLAN + ["--gin.TARGETS=['v4-32', 'v5e-16']",
                          "--gin.BATCH_SIZES=[2]",
                          "--gin.MODEL_AXIS_SIZES=[1, 8]"])
  out = capfd.readouterr().out
  assert code == 0, out
  assert "CPU-backend buffer accounting" in out
  assert "| v4-32 | train | 2×8 | 2 | " in out
  assert ("| v4-32 | train | 16×1 | 2 | — | — | — | — | — | 32 GiB | "
          "skipped: batch 2 / 1 microbatch(es) does not split over data=16 | — |"
          in out)  # nothing compiled
  assert "v4-32 train: fits at batch 2 on mesh(es) 2×8" in out
  v4, v5e = ([line.split(" | ") for line in out.splitlines()
              if line.startswith(f"| {name} | train | 2×8 ")][0]
             for name in ("v4-32", "v5e-16"))
  assert v5e[4:9] == v4[4:9]  # arguments .. total
  assert v5e[9:] == ["16 GiB", "yes", "as v4-32 |"]


@pytest.mark.usefixtures("clean_gin")
def test_lta_plan_passes_debug_to_the_process_it_reruns_in(capfd):
  # Kronecker factors that do not divide tiny.gin's kernels pass the
  # parent's checks and fail in the re-run process (16 devices for v4-32)
  # as it builds the model, before anything compiles.
  assert len(jax.devices()) < 16  # JAX has started here: lta plan re-runs
  bad = PLAN + ["--gin.AdapterConfig.kron_factors=(5, 5)",
                "--gin.TARGETS=['v4-32']", "--gin.MODEL_AXIS_SIZES=[8]"]
  assert cli.main(bad) == 2
  err = capfd.readouterr().err
  assert err == (
      "lta plan: Kronecker factors (m, n)=(5, 5) do not fit "
      "encoder/layers_0/attention/query/kernel of shape (in=64, out=48): "
      "m must divide 64 and n must divide 48.\n")

  assert cli.main(["--debug"] + bad) == 1  # the child's uncaught error
  err = capfd.readouterr().err
  assert "Traceback (most recent call last)" in err
  assert "lta.errors.ConfigError: Kronecker factors (m, n)=(5, 5)" in err


@pytest.mark.usefixtures("clean_gin")
def test_lta_plan_refuses_a_batch_size_that_is_not_positive(capsys):
  # Unknown targets and model axes that do not divide the chips: rows of
  # docs/errors.md (tests/cli/test_errors.py).
  assert cli.main(PLAN + ["--gin.BATCH_SIZES=[0]"]) == 2
  assert capsys.readouterr().err == (
      "lta plan: plan_memory.batch_sizes=[0]: give positive global batch "
      "sizes, e.g. (32, 64)\n")


MBART_PLAN = ["--gin_file=models/mbart_tiny.gin",
              "--gin_file=peft/lora_r4.gin", "--gin_file=runs/plan.gin",
              "--gin.plan_memory.model_config=@BartConfig()",
              "--gin.TASK_FEATURE_LENGTHS={'inputs': 8, 'targets': 4}",
              "--gin.TARGETS=['8xH100']", "--gin.BATCH_SIZES=[8]",
              "--gin.MODEL_AXIS_SIZES=[1]"]


def _planned_model_config(flags: list[str]):
  """plan_memory.model_config as `lta plan` parses `flags`."""
  import gin  # pylint: disable=g-import-not-at-top
  from lta.cli import gin_flags  # pylint: disable=g-import-not-at-top
  gin_flags.parse_and_configure(flags, entries=[memory_plan.plan_memory])
  return gin.query_parameter(
      "plan_memory.model_config").scoped_configurable_fn()


@pytest.mark.usefixtures("clean_gin")
def test_lta_plan_parses_an_mbart_model_file():
  # runs/plan.gin imports BartConfig.
  from lta.models.bart.config import BartConfig  # pylint: disable=g-import-not-at-top
  config = _planned_model_config(MBART_PLAN)
  assert isinstance(config, BartConfig)
  assert (config.name, config.vocab_size, config.d_model) == (
      "mbart_tiny", 160, 32)


@pytest.mark.usefixtures("clean_gin")
def test_lta_plan_parses_docs_scale_decoder_only_command():
  # docs/scale.md's Qwen2.5-7B rows (its compile: tens of seconds for 16
  # fake devices, so test_doc_commands.py does not run it).
  import gin  # pylint: disable=g-import-not-at-top
  config = _planned_model_config([
      "--gin_file=models/qwen2_5_7b.gin", "--gin_file=peft/lora_r4.gin",
      "--gin_file=runs/plan.gin",
      "--gin.plan_memory.model_config=@DecoderConfig()",
      "--gin.TASK_FEATURE_LENGTHS={'inputs': 512, 'targets': 64}",
      "--gin.BATCH_SIZES=[32]", "--gin.MODEL_AXIS_SIZES=[4]",
      "--gin.TARGETS=['v4-32', 'v5e-16']",
      "--gin.plan_memory.num_microbatches=4"])
  assert isinstance(config, DecoderConfig)
  assert (config.name, config.num_heads, config.num_kv_heads) == (
      "qwen2.5-7b", 28, 4)
  assert gin.query_parameter("plan_memory.num_microbatches") == 4


@pytest.mark.slow  # compiles the step for 8 devices: about a minute here
@pytest.mark.usefixtures("clean_gin")
def test_lta_plan_plans_an_mbart_model(capfd):
  # The tiny mBART's step compiles for 8xH100's 8 chips, which this
  # session's 8 fake devices already are.
  code = cli.main(["plan", *MBART_PLAN])
  out = capfd.readouterr().out
  assert code == 0, out
  assert "| 8xH100 | train | 8×1 | 8 | " in out
  assert "8xH100 train: fits at batch 8 on mesh(es) 8×1" in out
