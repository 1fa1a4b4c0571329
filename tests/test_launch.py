"""The local launcher (`python -m jaxnet_lite.launch`, `jaxnet-lite launch`) and `jaxnet_lite.distributed`'s
helpers for a lone process. The launcher's children here are plain Python (no JAX), so these run in about a
second; tests/test_multiprocess.py runs a real 2-process training through it."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from jaxnet_lite import distributed
from jaxnet_lite.apps import cli
from jaxnet_lite.launch import child_environment, launch

PRINT_ENV = ("import os; e = os.environ; print(e['JAXNET_LITE_PROCESS_ID'], e['JAXNET_LITE_NUM_PROCESSES'], "
             "e['JAX_COORDINATOR_ADDRESS'])")


def test_children_get_their_index_the_count_and_one_loopback_coordinator():
    out = io.StringIO()
    assert launch([sys.executable, "-c", PRINT_ENV], 3, stdout=out) == 0
    lines = sorted(out.getvalue().splitlines())
    assert [line.split()[:3] for line in lines] == [["[0]", "0", "3"], ["[1]", "1", "3"], ["[2]", "2", "3"]]
    addresses = {line.split()[3] for line in lines}
    assert len(addresses) == 1 and addresses.pop().startswith("127.0.0.1:")


def test_a_failing_process_stops_the_others_and_gives_its_status():
    script = ("import os, sys, time\n"
              "if os.environ['JAXNET_LITE_PROCESS_ID'] == '1':\n"
              "    print('failing', flush=True); sys.exit(3)\n"
              "time.sleep(600); print('still running')")
    out = io.StringIO()
    assert launch([sys.executable, "-c", script], 2, stdout=out) == 3
    assert "[1] failing" in out.getvalue() and "still running" not in out.getvalue()


def test_cpu_devices_sets_the_platform_and_the_device_count():
    env = child_environment(1, 2, 1234, cpu_devices=4, base={"XLA_FLAGS": "--xla_foo=1 "
                                                             "--xla_force_host_platform_device_count=8"})
    assert env["JAX_PLATFORMS"] == "cpu"
    assert env["XLA_FLAGS"].split() == ["--xla_foo=1", "--xla_force_host_platform_device_count=4"]
    assert env["JAXNET_LITE_PROCESS_ID"] == "1" and env["JAX_COORDINATOR_BIND_ADDRESS"] == "127.0.0.1:1234"


def test_cli_launch_runs_the_program_after_the_double_dash(capsys):
    assert cli.main(["launch", "-n", "2", "--", sys.executable, "-c", "print('hello')"]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == ["[0] hello", "[1] hello"]


def test_cli_launch_without_a_program_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["launch", "-n", "2"])
    assert exit_info.value.code == 2 and "no command given" in capsys.readouterr().err


def test_launch_refuses_bad_arguments():
    with pytest.raises(ValueError, match="no command"):
        launch([], 2)
    with pytest.raises(ValueError, match="positive int"):
        launch([sys.executable, "-c", "pass"], 0)


def test_a_lone_process_is_left_alone(monkeypatch):
    for name in (distributed.COORDINATOR_ENV, distributed.NUM_PROCESSES_ENV, distributed.PROCESS_ID_ENV):
        monkeypatch.delenv(name, raising=False)
    assert distributed.initialize() is False
    assert distributed.initialize(num_processes=1) is False
    assert distributed.is_primary() and distributed.process_index() == 0 and distributed.process_count() == 1
    assert distributed.process_rows(10) == slice(0, 10)


def test_initialize_names_a_bad_environment_variable(monkeypatch):
    monkeypatch.setenv(distributed.NUM_PROCESSES_ENV, "two")
    with pytest.raises(ValueError, match="JAXNET_LITE_NUM_PROCESSES='two'"):
        distributed.initialize()
    with pytest.raises(ValueError, match="process_id must be in 0..1"):
        distributed.initialize("127.0.0.1:1", num_processes=2, process_id=2)


def test_process_rows_are_contiguous_blocks_in_process_order(monkeypatch):
    import jax

    monkeypatch.setattr(jax, "process_count", lambda: 4)
    blocks = []
    for index in range(4):
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        blocks.append(distributed.process_rows(10))
    assert [(b.start, b.stop) for b in blocks] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert distributed.process_rows(np.int64(10)) == blocks[-1]
    for bad in (-1, 2.5, "10", True):
        with pytest.raises(ValueError, match="process_rows: n must be a non-negative integer"):
            distributed.process_rows(bad)
