"""Start distributed training with MXNet's parameter server: mxnet's own ``tools/launch.py``
(``dmlc_tracker``) with the fixes it needs on Python 3.11 and on one machine (spec
platform.md §6).

Fixes applied before mxnet's launcher runs:

* ``threading.Thread.isAlive`` (removed in Python 3.9) is restored as ``is_alive``: the tracker
  calls it while it waits for the scheduler.
* The scheduler address: the tracker guesses the machine's address (eth0's); ``--host-ip``
  sets it, and the ``local`` launcher uses 127.0.0.1, with ``DMLC_NODE_HOST=127.0.0.1`` so
  ps-lite servers and workers announce themselves on loopback too.
* The scheduler port: ``--port`` (default: one the OS reports free) instead of the first port
  from 9091 up, so two jobs on one machine do not race for the same port.
* The training command reaches the processes verbatim: it is handed over as one shell string,
  because dmlc's option parser would otherwise take the command's own options that share a
  name with dmlc's (``--log-file``, ``--env``, ...).
* ``local`` launcher: the processes run in their own sessions and are watched; when one of
  them fails, or the launcher is interrupted, all of them are stopped and the launcher exits
  with that status (as shipped, a failed worker leaves the others waiting forever).
"""
import argparse
import importlib.util
import logging
import os
import runpy
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["launch", "launch_parser", "mxnet_launch_script"]

_LOG = logging.getLogger(__name__)

LAUNCHERS = ("local", "ssh", "mpi", "sge", "yarn")

_EPILOG = """\
examples:
  one machine, loopback (1 server, 2 workers):
    python tools/launch.py -n 2 -s 1 python tools/train_cifar.py --kv-store dist_sync ...

  a cluster over ssh: HOSTS lists one reachable host per line (host or host:port); every
  host needs the same Python environment and the data at the same path (or --sync-dst-dir
  to rsync the current directory there); --host-ip is this machine's address as the hosts
  see it (the scheduler runs here):
    python tools/launch.py --launcher ssh -H HOSTS -n 4 -s 4 --host-ip 10.0.0.1 \\
        --sync-dst-dir /tmp/job python tools/train_imagenet.py --kv-store dist_sync ...
  (the ssh launcher wraps the command in single quotes: its arguments must not need
  shell quoting themselves)

Every worker reads its own shard of the training records (part kv.rank of kv.num_workers)
and rank 0 writes the checkpoints. Under dist_sync the batch size is per worker and the
effective batch is workers x --batch-size.
"""


def mxnet_launch_script():
    """Path of the ``tools/launch.py`` shipped in the installed mxnet wheel."""
    spec = importlib.util.find_spec("mxnet")
    if spec is None:
        raise RuntimeError("mxnet is not installed")
    path = os.path.join(os.path.dirname(spec.origin), "tools", "launch.py")
    if not os.path.isfile(path):
        raise RuntimeError("this mxnet has no tools/launch.py (%s)" % path)
    return path


def launch_parser():
    p = argparse.ArgumentParser(
        description="Launch a distributed MXNet job (parameter server): mxnet's "
                    "tools/launch.py with fixes for Python 3.11 and loopback.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--num-workers", type=int, required=True, help="worker processes")
    p.add_argument("-s", "--num-servers", type=int, default=None,
                   help="server processes (default: as many as workers)")
    p.add_argument("--launcher", default="local", choices=LAUNCHERS,
                   help="local: every process on this machine over loopback (default); "
                        "ssh/mpi: the hosts of --hostfile")
    p.add_argument("-H", "--hostfile", default=None, help="hosts for the ssh/mpi launchers")
    p.add_argument("--sync-dst-dir", default=None,
                   help="ssh: rsync the current directory to this path on every host")
    p.add_argument("--host-ip", default=None,
                   help="address of the scheduler (this machine); default: 127.0.0.1 with "
                        "the local launcher, else the tracker's guess")
    p.add_argument("--port", type=int, default=0,
                   help="scheduler port; 0: a free one")
    p.add_argument("--env-server", action="append", default=[], metavar="NAME:VALUE",
                   help="environment variable for the servers, repeatable")
    p.add_argument("--env-worker", action="append", default=[], metavar="NAME:VALUE",
                   help="environment variable for the workers, repeatable")
    p.add_argument("--env", action="append", default=[], metavar="NAME",
                   help="pass this variable to remote processes, repeatable")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the training command")
    return p


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class _Children:
    """The processes started here, each in its own session (process group), so that one
    failure or an interrupt stops every one of them."""

    def __init__(self):
        self.procs = []
        self.lock = threading.Lock()
        self.status = 0
        self.stopping = False

    def run(self, cmdline, env, role):
        with self.lock:
            if self.stopping:
                return 0
            proc = subprocess.Popen(cmdline, shell=True, executable="/bin/bash", env=env,
                                    start_new_session=True)
            self.procs.append(proc)
        ret = proc.wait()
        if ret != 0 and not self.stopping:
            _LOG.error("%s exited with status %d: stopping the job", role, ret)
            self.stop(ret if ret > 0 else 128 - ret)
        return ret

    def wait_all(self):
        """Wait for every process; the job's status (the first failure's, else 0)."""
        for proc in list(self.procs):
            ret = proc.wait()
            if ret != 0 and not self.stopping:
                self.status = self.status or (ret if ret > 0 else 128 - ret)
        return self.status

    def stop(self, status, grace=5.0):
        with self.lock:
            if self.stopping:
                return
            self.stopping, self.status = True, status
            procs = list(self.procs)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in procs:
                if proc.poll() is None:
                    try:
                        os.killpg(proc.pid, sig)
                    except ProcessLookupError:
                        pass
            deadline = time.time() + grace
            while time.time() < deadline and any(p.poll() is None for p in procs):
                time.sleep(0.05)

    # dmlc_tracker.local.exec_cmd(cmd, num_attempt, role, taskid, pass_env)
    def exec_cmd(self, cmd, _num_attempt, role, taskid, pass_env):
        env = os.environ.copy()
        env.update({k: str(v) for k, v in pass_env.items()})
        env.update(DMLC_TASK_ID=str(taskid), DMLC_ROLE=role, DMLC_JOB_CLUSTER="local")
        self.run(" ".join(cmd), env, "%s %d" % (role, taskid))

    # the tracker starts the scheduler with subprocess.check_call(cmd, env=..., shell=True, ...)
    def check_call(self, cmd, env=None, **_):
        self.run(cmd, env, "scheduler")


def _patch_tracker(children, host_ip, port):
    threading.Thread.isAlive = threading.Thread.is_alive  # removed in Python 3.9
    import dmlc_tracker.local
    import dmlc_tracker.tracker as tracker
    if host_ip:
        tracker.get_host_ip = lambda hostIP=None: host_ip
    base = tracker.PSTracker

    class PSTracker(base):  # the scheduler on the chosen (or a free) port
        def __init__(self, hostIP, cmd, _port=None, _port_end=None, envs=None):
            p = port or _free_port()
            if port:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    try:
                        s.bind(("", p))
                    except OSError as err:
                        raise RuntimeError("scheduler port %d: %s" % (p, err)) from None
            super().__init__(hostIP, cmd, p, p + 1, envs)
    tracker.PSTracker = PSTracker
    tracker.subprocess = children  # the scheduler (tracker uses only check_call)
    dmlc_tracker.local.exec_cmd = children.exec_cmd


def launch(argv=None):
    """Run mxnet's launcher with the fixes of the module docstring; returns the exit status."""
    args = launch_parser().parse_args(argv)
    if not args.command:
        raise ValueError("no training command given (e.g. python tools/train_cifar.py "
                         "--kv-store dist_sync ...)")
    if args.num_workers < 1 or (args.num_servers is not None and args.num_servers < 1):
        raise ValueError("--num-workers and --num-servers must be >= 1")
    host_ip = args.host_ip or ("127.0.0.1" if args.launcher == "local" else None)
    if args.launcher == "local":
        os.environ["DMLC_NODE_HOST"] = host_ip  # ps-lite nodes announce this address
    children = _Children()
    _patch_tracker(children, host_ip, args.port)
    mx_argv = ["-n", str(args.num_workers), "-s", str(args.num_servers or args.num_workers),
               "--launcher", args.launcher]
    if args.hostfile:
        mx_argv += ["-H", args.hostfile]
    if args.sync_dst_dir:
        mx_argv += ["--sync-dst-dir", args.sync_dst_dir]
    for key in ("env_server", "env_worker", "env"):
        for value in getattr(args, key):
            mx_argv += ["--" + key.replace("_", "-"), value]
    mx_argv.append(" ".join(shlex.quote(c) for c in args.command))  # one token: see docstring

    def interrupted(signum, _frame):
        _LOG.error("interrupted (signal %d): stopping the job", signum)
        children.stop(128 + signum)
    previous = {s: signal.signal(s, interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    script = mxnet_launch_script()
    saved_argv = sys.argv
    try:
        sys.argv = [script] + mx_argv
        runpy.run_path(script, run_name="mxnet_tools_launch")["main"]()
        return children.wait_all()  # the scheduler has ended: collect the workers' statuses
    finally:
        sys.argv = saved_argv
        for s, h in previous.items():
            signal.signal(s, h)
