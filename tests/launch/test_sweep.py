"""`lta sweep`: grid expansion, local runs, printed jobs, the collected table.

The local jobs here are a small real program that writes a scores.json from
its gin flags, so the whole launcher runs in seconds; test_sweep_e2e.py
sweeps λ with `lta eval` on the tiny model.
"""

import csv
import json
import shlex
import sys
import textwrap

import pytest

from lta import errors
from lta.jobs import sweep as sweep_launcher
from lta.cli import sweep as sweep_main

# Writes {method: {lang: {"rouge2": ...}}} from --gin.LAMBDA,
# --gin.run_eval.space and --gin.run_eval.baseline to
# --gin.run_eval.output_dir, like `lta eval`; checks its --gin.base flag
# arrived with its quotes.
SCORER = textwrap.dedent("""
    import json, os, sys
    flags = dict(a[len("--gin."):].split("=", 1) for a in sys.argv[1:])
    assert json.loads(flags["base"]) == "/data/mt5 base", flags["base"]
    baseline = json.loads(flags.get("run_eval.baseline", '"include"'))
    scores = {}
    if baseline != "exclude":
      scores["baseline"] = {"pt": {"rouge2": 1.0}, "uk": {"rouge2": 2.0}}
    if baseline != "only":
      lam = float(flags["LAMBDA"])
      space = json.loads(flags.get("run_eval.space", '"factor"'))
      bonus = 1.0 if space == "delta" else 0.0
      scores["add_subtract"] = {"pt": {"rouge2": 10 * lam + bonus},
                                "uk": {"rouge2": 20 * lam + bonus}}
    out = json.loads(flags["run_eval.output_dir"])
    os.makedirs(out)
    with open(os.path.join(out, "scores.json"), "w") as f:
      json.dump(scores, f)
""")
# A job that merges as `lta eval` does, λ an argument of the jitted function,
# and records its XLA compilations and persistent-cache loads.
MERGER = textwrap.dedent("""
    import json, os, sys
    import jax, jax.numpy as jnp
    from lta.eval import compilations
    flags = dict(a[len("--gin."):].split("=", 1) for a in sys.argv[1:])
    with compilations.counting() as compiled:
      merge = jax.jit(lambda w, d, lam: w + lam * d)
      w = merge(jnp.ones((8, 8)), jnp.ones((8, 8)), float(flags["LAMBDA"]))
    out = json.loads(flags["run_eval.output_dir"])
    os.makedirs(out)
    with open(os.path.join(out, "scores.json"), "w") as f:
      json.dump({"merge": {"pt": {"rouge2": float(w.sum()),
                                  "compiled": len(compiled.names),
                                  "loaded": compiled.persistent_cache_hits}}},
                f)
""")
BASE = '--gin.base="/data/mt5 base"'  # as the shell passes \"$MT5_BASE\"
EVAL = ["lta", "eval", "--gin_file=runs/eval.gin", BASE]


def test_parse_grid_and_gin_literals():
  grid = sweep_launcher.parse_grid(
      ["LAMBDA=[0.3, 0.5]", 'run_eval.space=["factor", "delta"]'])
  assert grid == {"LAMBDA": [0.3, 0.5], "run_eval.space": ["factor", "delta"]}
  assert sweep_launcher.gin_literal("factor") == '"factor"'
  assert sweep_launcher.gin_literal(0.3) == "0.3"
  for bad in ("LAMBDA", "LAMBDA=0.3", "LAMBDA=[]", "LAMBDA=[0.3,", "=[1]"):
    with pytest.raises(errors.ConfigError, match="--grid"):
      sweep_launcher.parse_grid([bad])


def test_expand_is_the_cartesian_product_with_one_output_dir_each(tmp_path):
  grid = {"LAMBDA": [0.3, 0.5, 0.7], "run_eval.space": ["factor", "delta"]}
  jobs = sweep_launcher.expand(["python", "score.py", BASE], grid,
                               str(tmp_path), "run_eval.output_dir")
  assert len(jobs) == 6
  assert len({j.output_dir for j in jobs}) == 6
  assert jobs[1].bindings == {"LAMBDA": 0.3, "run_eval.space": "delta"}
  assert jobs[1].argv == [
      "python", "score.py", BASE, "--gin.LAMBDA=0.3",
      '--gin.run_eval.space="delta"',
      f'--gin.run_eval.output_dir="{jobs[1].output_dir}"']


@pytest.mark.parametrize("command", [
    EVAL, ["python", "-m", "lta.cli.eval", BASE],
    ["/venv/bin/python", "-m", "lta.cli.main", "eval", BASE]])
def test_an_eval_sweep_scores_the_baseline_in_one_job(command, tmp_path):
  jobs = sweep_launcher.expand(command, {"LAMBDA": [0.3, 0.7]},
                               str(tmp_path), "run_eval.output_dir")
  assert [j.name for j in jobs] == ["baseline", "000_LAMBDA=0.3",
                                    "001_LAMBDA=0.7"]
  assert jobs[0].bindings == {}
  assert jobs[0].argv == command + [
      '--gin.run_eval.baseline="only"',
      f'--gin.run_eval.output_dir="{jobs[0].output_dir}"']
  for job in jobs[1:]:
    assert '--gin.run_eval.baseline="exclude"' in job.argv
  every = sweep_launcher.expand(command, {"LAMBDA": [0.3]}, str(tmp_path),
                                "run_eval.output_dir", "every_job")
  assert [j.name for j in every] == ["000_LAMBDA=0.3"]
  assert not any("run_eval.baseline" in a for a in every[0].argv)


def test_a_sweep_over_single_adapters_has_no_baseline_job(tmp_path):
  jobs = sweep_launcher.expand(
      EVAL, {"run_eval.adapter_dir": ["/runs/a", "/runs/b"]}, str(tmp_path),
      "run_eval.output_dir")
  assert len(jobs) == 2 and "baseline" not in [j.name for j in jobs]


def test_print_mode_quotes_the_command_for_a_shell(tmp_path, capsys):
  prefix = "launch/tpu_vm.sh run --name lta-v4 --zone z --"
  command = ["lta", "eval", "--gin_file=experiments/table1_add.gin", BASE]
  assert sweep_main.main([
      "--mode=print", f"--workdir={tmp_path}", f"--prefix={prefix}",
      "--grid=LAMBDA=[0.5, 0.9]", "--", *command]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  jobs = sweep_launcher.read_jobs(str(tmp_path))
  assert len(lines) == len(jobs) == 3  # the baseline, then one per λ
  for line, job in zip(lines, jobs):
    assert line.startswith(prefix + " lta eval ")
    # The shell gets back exactly the job's argv, quotes included.
    assert shlex.split(line[len(prefix):]) == job.argv
    assert job.argv[:len(command)] == command
  assert "--gin.LAMBDA=0.9" in jobs[2].argv


def test_local_sweep_runs_every_job_and_collects_one_table(tmp_path, capsys):
  script = tmp_path / "scorer.py"
  script.write_text(SCORER)
  workdir = tmp_path / "sweep"
  assert sweep_main.main([
      "--mode=local", f"--workdir={workdir}",
      "--grid=LAMBDA=[0.3, 0.7]", '--grid=run_eval.space=["factor", "delta"]',
      "--output_binding=run_eval.output_dir", "--",
      sys.executable, str(script), BASE]) == 0
  assert "| job | LAMBDA | space | method | pt | uk | avg |" in \
      capsys.readouterr().out.replace("run_eval.space", "space")
  rows = list(csv.DictReader(open(workdir / "sweep.csv")))
  assert len(rows) == 8  # this program is no `lta eval`: baseline per job
  got = {(float(r["LAMBDA"]), r["run_eval.space"]): float(r["avg"])
         for r in rows if r["method"] == "add_subtract"}
  assert got == pytest.approx({(0.3, "factor"): 4.5, (0.3, "delta"): 5.5,
                               (0.7, "factor"): 10.5, (0.7, "delta"): 11.5})
  # collect alone rebuilds the same table from the jobs' scores.json.
  before = (workdir / "sweep.md").read_text()
  assert sweep_main.main(["--mode=collect", f"--workdir={workdir}"]) == 0
  assert (workdir / "sweep.md").read_text() == before


def test_the_baseline_job_gives_one_row_without_grid_values(tmp_path):
  script = tmp_path / "scorer.py"
  script.write_text(SCORER)
  jobs = sweep_launcher.expand(EVAL, {"LAMBDA": [0.3, 0.7]},
                               str(tmp_path), "run_eval.output_dir")
  sweep_launcher.write_jobs(jobs, str(tmp_path))
  # What `lta eval` would get after "lta eval --gin_file=...": the flags.
  for job in jobs:
    job.argv = [sys.executable, str(script)] + job.argv[len(EVAL) - 1:]
  sweep_launcher.run_local(jobs)
  rows = sweep_launcher.collect(str(tmp_path))
  assert [(r["job"], r["LAMBDA"], r["method"]) for r in rows] == [
      ("baseline", None, "baseline"), ("000_LAMBDA=0.3", 0.3, "add_subtract"),
      ("001_LAMBDA=0.7", 0.7, "add_subtract")]
  table = open(sweep_launcher.write_table(rows, str(tmp_path))["sweep.md"]
               ).read()
  assert "| baseline |  | baseline | 1.00 | 2.00 | 1.50 |" in table


def test_jobs_after_the_first_load_its_programs_from_a_shared_cache(
    tmp_path, monkeypatch):
  monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
  script = tmp_path / "merge.py"
  script.write_text(MERGER)
  jobs = sweep_launcher.expand([sys.executable, str(script)],
                               {"LAMBDA": [0.3, 0.5, 0.7]},
                               str(tmp_path / "sweep"), "run_eval.output_dir")
  sweep_launcher.run_local(jobs)
  got = [json.load(open(f"{job.output_dir}/scores.json"))["merge"]["pt"]
         for job in jobs]
  assert [g["rouge2"] for g in got] == pytest.approx([64 * 1.3, 64 * 1.5,
                                                      64 * 1.7])
  assert got[0]["compiled"] > 0 and got[0]["loaded"] == 0
  for later in got[1:]:  # every program, from the first job's compilation
    assert later["loaded"] == later["compiled"] == got[0]["compiled"]
  assert (tmp_path / "sweep" / sweep_launcher.COMPILATION_CACHE).is_dir()


def test_the_command_comes_after_a_double_dash(tmp_path):
  with pytest.raises(errors.ConfigError, match="after --"):
    sweep_main.main([f"--workdir={tmp_path}", "--grid=LAMBDA=[0.5]"])


def test_collect_names_a_missing_result_and_a_missing_metric(tmp_path):
  jobs = sweep_launcher.expand(["true"], {"LAMBDA": [0.5]}, str(tmp_path),
                               "run_eval.output_dir")
  sweep_launcher.write_jobs(jobs, str(tmp_path))
  with pytest.raises(errors.MissingFileError, match="scores.json"):
    sweep_launcher.collect(str(tmp_path))
  (tmp_path / jobs[0].name).mkdir()
  (tmp_path / jobs[0].name / "scores.json").write_text(
      json.dumps({"m": {"pt": {"f1": 1.0}}}))
  with pytest.raises(errors.DataError, match="'rouge2'.*f1"):
    sweep_launcher.collect(str(tmp_path))
  assert sweep_launcher.collect(str(tmp_path), "f1")[0]["pt"] == 1.0


def test_a_failing_job_stops_the_sweep(tmp_path):
  jobs = sweep_launcher.expand(["false"], {"LAMBDA": [0.5, 0.9]},
                               str(tmp_path), "run_eval.output_dir")
  with pytest.raises(sweep_launcher.SweepJobFailed,
                     match="000_LAMBDA=0.5 failed"):
    sweep_launcher.run_local(jobs)


def test_eval_scores_what_run_eval_baseline_says():
  from lta.jobs import evaluate as eval_job  # pylint: disable=g-import-not-at-top
  compared = eval_job.compared_methods
  assert compared("lang_task_add", ["en"]) == ["task_only", "lang_task_add"]
  assert compared("lang_task_add", ["en"], "exclude") == ["lang_task_add"]
  assert compared("lang_task_add", ["en"], "only") == ["task_only"]
  # Several sources have no single-source baseline to score alone.
  assert compared("lang_task_add_subtract_related", None) == [
      "lang_task_add_subtract_related"]
  with pytest.raises(errors.ConfigError, match="one source"):
    compared("lang_task_add_subtract_related", None, "only")
