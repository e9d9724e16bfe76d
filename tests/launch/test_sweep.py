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

from lta import sweep_launcher
from lta.main import sweep as sweep_main

# Writes {method: {lang: {"rouge2": ...}}} from --gin.LAMBDA and
# --gin.run_eval.space to --gin.run_eval.output_dir, like `lta eval`.
SCORER = textwrap.dedent("""
    import json, os, sys
    flags = dict(a[len("--gin."):].split("=", 1) for a in sys.argv[1:])
    lam = float(flags["LAMBDA"])
    bonus = 1.0 if json.loads(flags["run_eval.space"]) == "delta" else 0.0
    out = json.loads(flags["run_eval.output_dir"])
    os.makedirs(out)
    with open(os.path.join(out, "scores.json"), "w") as f:
      json.dump({"add_subtract": {"pt": {"rouge2": 10 * lam + bonus},
                                  "uk": {"rouge2": 20 * lam + bonus}}}, f)
""")


def test_parse_grid_and_gin_literals():
  grid = sweep_launcher.parse_grid(
      ["LAMBDA=[0.3, 0.5]", 'run_eval.space=["factor", "delta"]'])
  assert grid == {"LAMBDA": [0.3, 0.5], "run_eval.space": ["factor", "delta"]}
  assert sweep_launcher.gin_literal("factor") == '"factor"'
  assert sweep_launcher.gin_literal(0.3) == "0.3"
  for bad in ("LAMBDA", "LAMBDA=0.3", "LAMBDA=[]", "LAMBDA=[0.3,", "=[1]"):
    with pytest.raises(ValueError, match="--grid"):
      sweep_launcher.parse_grid([bad])


def test_expand_is_the_cartesian_product_with_one_output_dir_each(tmp_path):
  grid = {"LAMBDA": [0.3, 0.5, 0.7], "run_eval.space": ["factor", "delta"]}
  jobs = sweep_launcher.expand("lta eval --gin_file=runs/eval.gin", grid,
                               str(tmp_path), "run_eval.output_dir")
  assert len(jobs) == 6
  assert len({j.output_dir for j in jobs}) == 6
  assert jobs[1].bindings == {"LAMBDA": 0.3, "run_eval.space": "delta"}
  assert jobs[1].argv == [
      "lta", "eval", "--gin_file=runs/eval.gin", "--gin.LAMBDA=0.3",
      '--gin.run_eval.space="delta"',
      f'--gin.run_eval.output_dir="{jobs[1].output_dir}"']


def test_print_mode_puts_the_launcher_in_front(tmp_path, capsys):
  prefix = "launch/tpu_vm.sh run --name lta-v4 --zone z --"
  assert sweep_main.main([
      "--mode=print", f"--workdir={tmp_path}", f"--prefix={prefix}",
      "--base_command=lta eval --gin_file=experiments/table1_add.gin",
      "--grid=LAMBDA=[0.5, 0.9]"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 2
  for line, lam in zip(lines, (0.5, 0.9)):
    assert line.startswith(prefix + " lta eval ")
    argv = shlex.split(line)
    assert f"--gin.LAMBDA={lam}" in argv
    assert any(a.startswith("--gin.run_eval.output_dir=") for a in argv)
  assert len(sweep_launcher.read_jobs(str(tmp_path))) == 2


def test_local_sweep_runs_every_job_and_collects_one_table(tmp_path, capsys):
  script = tmp_path / "scorer.py"
  script.write_text(SCORER)
  workdir = tmp_path / "sweep"
  assert sweep_main.main([
      "--mode=local", f"--workdir={workdir}",
      f"--base_command={shlex.quote(sys.executable)} {script}",
      "--grid=LAMBDA=[0.3, 0.7]", '--grid=run_eval.space=["factor", "delta"]',
      "--output_binding=run_eval.output_dir"]) == 0
  assert "| job | LAMBDA | space | method | pt | uk | avg |" in \
      capsys.readouterr().out.replace("run_eval.space", "space")
  rows = list(csv.DictReader(open(workdir / "sweep.csv")))
  assert len(rows) == 4
  got = {(float(r["LAMBDA"]), r["run_eval.space"]): float(r["avg"])
         for r in rows}
  assert got == pytest.approx({(0.3, "factor"): 4.5, (0.3, "delta"): 5.5,
                               (0.7, "factor"): 10.5, (0.7, "delta"): 11.5})
  # collect alone rebuilds the same table from the jobs' scores.json.
  before = (workdir / "sweep.md").read_text()
  assert sweep_main.main(["--mode=collect", f"--workdir={workdir}"]) == 0
  assert (workdir / "sweep.md").read_text() == before


def test_collect_names_a_missing_result_and_a_missing_metric(tmp_path):
  jobs = sweep_launcher.expand("true", {"LAMBDA": [0.5]}, str(tmp_path),
                               "run_eval.output_dir")
  sweep_launcher.write_jobs(jobs, str(tmp_path))
  with pytest.raises(FileNotFoundError, match="scores.json"):
    sweep_launcher.collect(str(tmp_path))
  (tmp_path / jobs[0].name).mkdir()
  (tmp_path / jobs[0].name / "scores.json").write_text(
      json.dumps({"m": {"pt": {"f1": 1.0}}}))
  with pytest.raises(ValueError, match="'rouge2'.*f1"):
    sweep_launcher.collect(str(tmp_path))
  assert sweep_launcher.collect(str(tmp_path), "f1")[0]["pt"] == 1.0


def test_a_failing_job_stops_the_sweep(tmp_path):
  jobs = sweep_launcher.expand("false", {"LAMBDA": [0.5, 0.9]},
                               str(tmp_path), "run_eval.output_dir")
  with pytest.raises(RuntimeError, match="000_LAMBDA=0.5 failed"):
    sweep_launcher.run_local(jobs)
