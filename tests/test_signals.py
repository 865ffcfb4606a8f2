"""SIGTERM as preemption, with real processes and real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import sys, time
    from distill.signals import Preempted, preemptible
    try:
        with preemptible():
            print("child up", flush=True)
            time.sleep(60)
    except Preempted:
        time.sleep(0.5)  # its cleanup
        print("child stopped cleanly", flush=True)
        sys.exit(143)
    """
)
PARENT = textwrap.dedent(
    """
    import sys
    from distill.signals import Preempted, call_forwarding, preemptible
    try:
        with preemptible():
            print("parent up", flush=True)
            call_forwarding([sys.executable, "-c", sys.argv[1]])
    except Preempted:
        print("parent preempted", flush=True)
        sys.exit(143)
    """
)


def test_sigterm_to_the_parent_stops_the_child_cleanly_first():
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout.readline().strip() == "parent up"
        assert proc.stdout.readline().strip() == "child up"
        os.kill(proc.pid, signal.SIGTERM)  # the parent alone, as Kubernetes signals PID 1
        rest = proc.stdout.read().split()
        code = proc.wait(timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    assert code == 143
    assert " ".join(rest) == "child stopped cleanly parent preempted"  # the child finished first


def test_a_second_sigterm_does_not_interrupt_the_cleanup():
    code = textwrap.dedent(
        """
        import os, signal, sys, time
        from distill.signals import Preempted, preemptible
        try:
            with preemptible():
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
                finally:  # a stage's cleanup runs inside the block
                    os.kill(os.getpid(), signal.SIGTERM)  # the scheduler again: ignored meanwhile
                    time.sleep(0.2)
                    print("cleaned up")
        except Preempted:
            print("preempted")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.split() == ["cleaned", "up", "preempted"], out.stderr


def test_the_cli_exits_143_with_how_to_resume():
    """`distill`'s real entry point around a command that is still working when SIGTERM comes."""
    code = textwrap.dedent(
        """
        import sys, time
        from distill import cli

        @cli.app.command("work")
        def work():
            print("working", flush=True)
            time.sleep(60)

        sys.argv = ["distill", "work"]
        cli.main()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "working"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "run the same command again" in err
    assert "Traceback" not in err
