"""derain-run on a live UDP input into HLS, stopped by SIGTERM: the playlist is closed and valid."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import av
from cli_case import cli_argv
from live_helpers import rising, start_sender, stop, udp_url

from derain_deploy.streams.loopback import free_port


def test_sigterm_closes_the_live_outputs(tmp_path: Path, tiny_weights: Path) -> None:
    url = udp_url(free_port())
    playlist = tmp_path / "hls" / "live.m3u8"
    model = ["--backend", "torch", "--model", str(tiny_weights)]  # no ONNX export in the subprocess
    args = [url, "-o", str(playlist), *model, "--status-seconds", "1", "-q"]
    run = subprocess.Popen(cli_argv("derain-run", args), cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    sender = None
    try:
        time.sleep(1.0)  # the reader binds the port while the interpreter starts
        sender = start_sender(url, seconds=40)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and run.poll() is None:
            if len(list(playlist.parent.glob("*.ts"))) >= 2:
                break
            time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            run.kill()
        if sender is not None:
            stop(sender)
    assert run.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: interrupted (SIGTERM); the live outputs were closed"
    ]
    assert any(line.startswith("summary: ") and "dropped of" in line for line in err.splitlines()), err
    assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")
    with av.open(str(playlist)) as container:
        pts = [f.pts for f in container.decode(video=0)]
    assert len(pts) >= 10 and rising(pts)
