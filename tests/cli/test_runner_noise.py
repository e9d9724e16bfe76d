"""TensorFlow's start-up lines stay off the console; every other line of
file descriptor 2 (C++ logs included) is kept, in order."""

import os

from lta.cli import runner

# As TensorFlow 2.21 prints them at import on a CPU-only machine with
# AVX-512, whatever TF_CPP_MIN_LOG_LEVEL says.
TF_STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are "
    "written to STDERR\n"
    "I0000 00:00:1796235153.557237   27200 port.cc:153] oneDNN custom "
    "operations are on. You may see slightly different numerical results "
    "due to floating-point round-off errors from different computation "
    "orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.\n"
    "I0000 00:00:1796235153.558052   27200 cudart_stub.cc:31] Could not find "
    "cuda drivers on your machine, GPU will not be used.\n")


def test_tensorflow_start_up_lines_are_dropped_and_others_kept(capfd):
  with runner._filtered_stderr(runner._TF_NOISE):  # pylint: disable=protected-access
    os.write(2, b"kept before\n")
    os.write(2, TF_STARTUP.encode())
    os.write(2, b"E0000 port.cc:153] a real error\n")
  assert capfd.readouterr().err == (
      "kept before\nE0000 port.cc:153] a real error\n")
