"""Start N processes of one program on this machine, wired together for `jax.distributed`.

    python -m jaxnet_lite.launch -n 2 -- python train.py --epochs 3
    jaxnet-lite launch -n 2 --cpu-devices 1 -- python train.py

For trying several processes out on one machine. Every child gets the coordinator on a free loopback port
(`JAX_COORDINATOR_ADDRESS`, bound to 127.0.0.1 only), the process count and its own index
(`JAXNET_LITE_NUM_PROCESSES`, `JAXNET_LITE_PROCESS_ID`), which `jaxnet_lite.distributed.initialize()`
reads. Their output is streamed line by line, each line prefixed with `[index]`. When one exits with an
error the others are stopped; Ctrl-C stops them all. The exit status is the first non-zero one (0 when
all succeed). On real hosts, run the program once per host with those variables set instead.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

__all__ = ["launch", "child_environment", "free_port", "add_arguments", "run_from_arguments", "main"]

_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05


def free_port() -> int:
    """A TCP port free on the loopback interface now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_environment(index: int, count: int, port: int, cpu_devices: int | None = None,
                      base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of process `index` of `count`: `base` (default: this one's) plus the coordinator,
    the count and the index; with `cpu_devices`, JAX on CPU with that many devices per process."""
    env = dict(os.environ if base is None else base)
    address = f"127.0.0.1:{port}"
    env.update(JAX_COORDINATOR_ADDRESS=address, JAX_COORDINATOR_BIND_ADDRESS=address,
               JAXNET_LITE_NUM_PROCESSES=str(count), JAXNET_LITE_PROCESS_ID=str(index), PYTHONUNBUFFERED="1")
    if cpu_devices is not None:
        flags = [flag for flag in env.get("XLA_FLAGS", "").split()
                 if not flag.startswith("--xla_force_host_platform_device_count")]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={cpu_devices}"])
        env["JAX_PLATFORMS"] = "cpu"
    return env


def _stream(index: int, source: TextIO, sink: TextIO, lock: threading.Lock) -> None:
    """Copy `source` to `sink` line by line, each line prefixed with `[index]`."""
    for line in iter(source.readline, ""):
        with lock:
            sink.write(f"[{index}] {line}" if line.endswith("\n") else f"[{index}] {line}\n")
            sink.flush()
    source.close()


def _stop(children: list[subprocess.Popen]) -> None:
    """SIGTERM to every child still running (its whole process group), SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, _GRACE_SECONDS), (signal.SIGKILL, _GRACE_SECONDS)):
        running = [c for c in children if c.poll() is None]
        for child in running:
            try:
                os.killpg(child.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while any(c.poll() is None for c in running) and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)


def _status(returncode: int) -> int:
    """A shell-style exit status: a child killed by signal N gives 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def launch(command: Sequence[str], num_processes: int, *, port: int | None = None, cpu_devices: int | None = None,
           stdout: TextIO | None = None) -> int:
    """Run `command` as `num_processes` processes; returns the first non-zero exit status, else 0."""
    if not command:
        raise ValueError("launch: no command given (put it after --, e.g. -- python train.py)")
    if not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"launch: the number of processes must be a positive int, got {num_processes!r}")
    sink = stdout or sys.stdout
    port = port or free_port()
    lock = threading.Lock()
    children: list[subprocess.Popen] = []
    threads = []
    try:
        for index in range(num_processes):
            child = subprocess.Popen(list(command), env=child_environment(index, num_processes, port, cpu_devices),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                     start_new_session=True)  # its own group: stopped with all it started
            children.append(child)
            thread = threading.Thread(target=_stream, args=(index, child.stdout, sink, lock), daemon=True)
            thread.start()
            threads.append(thread)
        first_error = 0
        while any(c.poll() is None for c in children):
            failed = [c for c in children if c.poll() not in (None, 0)]
            if failed:
                first_error = _status(failed[0].returncode)
                _stop(children)
                break
            time.sleep(_POLL_SECONDS)
        if not first_error:
            first_error = next((_status(c.returncode) for c in children if c.returncode), 0)
    except KeyboardInterrupt:
        _stop(children)
        first_error = 130
    except BaseException:
        _stop(children)
        raise
    for thread in threads:
        thread.join(timeout=_GRACE_SECONDS)
    return first_error


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, or a message saying what was given."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The launcher's options, for `python -m jaxnet_lite.launch` and `jaxnet-lite launch`."""
    parser.add_argument("-n", "--num-processes", type=positive_int, required=True, help="how many processes to start")
    parser.add_argument("--port", type=positive_int, default=None, help="coordinator port (default: a free one)")
    parser.add_argument("--cpu-devices", type=positive_int, default=None,
                        help="run each process on CPU with this many devices (default: the environment decides)")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="the program and its arguments, after --")


def run_from_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run what `add_arguments` parsed; a missing program is a usage error of `parser`."""
    command = list(args.program)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("no command given: put it after --, e.g. -- python train.py")
    return launch(command, args.num_processes, port=args.port, cpu_devices=args.cpu_devices)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxnet_lite.launch",
                                     description="Start N local processes of one program for jax.distributed.")
    add_arguments(parser)
    return run_from_arguments(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
