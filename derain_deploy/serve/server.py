"""Start and stop ``derain-serve``: a local Ray (or a cluster's), Ray Serve's HTTP proxy on
``host:port``, and the :class:`~.app.DerainService` application, waited for until ready."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from ..backends import registry, resolve_model
from ..signals import SIGNALS
from .options import ServeOptions

APP_NAME = "derain"


class ServeError(RuntimeError):
    """The service cannot start (port taken, backend not opening...); the message is one line."""


@dataclass
class RayOptions:
    """Where the service runs: ``address`` joins a cluster, else a local Ray is started."""

    address: str | None = None
    num_cpus: int | None = None  # local Ray only (None: every core)
    temp_dir: str | None = None  # local Ray only (None: a fresh folder under /tmp)
    metrics_port: int | None = None  # local Ray: where Prometheus scrapes Ray's and Serve's metrics
    # CPUs each replica reserves (Ray sets its OMP_NUM_THREADS, so its backend's threads, to it);
    # None: a local Ray's CPUs shared by the replicas, 1 on a cluster
    replica_cpus: int | None = None
    log_to_driver: bool = True  # replica logs (request lines) on this process's stderr


@dataclass
class Server:
    """A running service; :meth:`stop` takes it down (and the local Ray it started)."""

    url: str
    local_ray: bool
    replicas: int
    info: dict[str, object] = field(default_factory=dict)
    temp_dir: str | None = None  # the local Ray's session folder, when start() made it: removed by stop()

    def stop(self) -> None:
        import ray
        from ray import serve

        try:
            if self.local_ray:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)  # leave the cluster's Serve and other apps running
        finally:
            ray.shutdown()
            if self.temp_dir:
                shutil.rmtree(self.temp_dir, ignore_errors=True)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (tests and benchmarks start the service on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_replicas(options: ServeOptions, gpus: float) -> int:
    """One replica per GPU where the backend may use one, else one."""
    cpu_only = options.backend != "auto" and registry.get(options.backend).devices == ("cpu",)
    if options.device == "cpu" or cpu_only or gpus < 1:
        return 1
    return int(gpus)


def start(
    options: ServeOptions,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int | None = None,
    ray_options: RayOptions | None = None,
    ready_timeout_s: float = 300.0,
) -> Server:
    """Start the service and wait until ``/readyz`` answers 200 (at most ``ready_timeout_s``).
    On any failure everything started is taken down again and :class:`ServeError` raised."""
    ray_options = ray_options or RayOptions()
    if options.max_batch < 1:
        raise ServeError(f"--max-batch must be at least 1, got {options.max_batch}")
    if options.batch_wait_ms < 0:
        raise ServeError(f"--batch-wait-ms must be >= 0, got {options.batch_wait_ms}")
    if options.backend_factory is None:
        resolve_model(options.model)  # a missing model file fails now, not after Ray has started
    if ray_options.address is None and not port_free(host, port):
        raise ServeError(f"port {port} on {host} is in use (choose another with --port)")
    import ray
    from ray import serve

    from .app import DerainService

    local = ray_options.address is None
    handlers = _python_signal_handlers()
    try:
        made_temp = _init_ray(ray_options)
    except Exception as e:
        raise ServeError(f"Ray did not start: {' '.join(str(e).split())[:500]}") from None
    for signum, handler in handlers.items():  # ray.init's own SIGTERM handler exits without cleanup
        signal.signal(signum, handler)
    server = Server(
        url=f"http://{_client_host(host)}:{port}", local_ray=local, replicas=0, temp_dir=made_temp
    )
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        server.replicas = replicas or default_replicas(options, gpus)
        use_gpu = options.device != "cpu" and options.backend != "openvino" and gpus >= 1
        cpus = ray_options.replica_cpus or (
            max(1, int(ray.cluster_resources().get("CPU", 1)) // server.replicas) if local else 1
        )
        actor = {"num_cpus": cpus, "num_gpus": min(1.0, gpus / server.replicas) if use_gpu else 0}
        serve.start(http_options={"host": host, "port": port})
        app = DerainService.options(
            num_replicas=server.replicas,
            ray_actor_options=actor,
            max_ongoing_requests=max(16, 4 * options.max_batch),
            health_check_period_s=2,
        ).bind(options)
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        server.info = wait_ready(server.url, ready_timeout_s)
    except BaseException as e:
        with contextlib.suppress(Exception):  # the original error is the one to report
            server.stop()
        if isinstance(e, ServeError):
            raise
        if isinstance(e, Exception):
            raise ServeError(f"the service did not start: {' '.join(str(e).split())[:500]}") from None
        raise
    return server


def _init_ray(ray_options: RayOptions) -> str | None:
    """Join the cluster, or start a local Ray; returns the session folder made for it (if any)."""
    import ray

    if ray_options.address is not None:
        ray.init(address=ray_options.address, log_to_driver=ray_options.log_to_driver)
        return None
    made = None if ray_options.temp_dir else tempfile.mkdtemp(prefix="ray-derain-", dir="/tmp")
    try:
        ray.init(
            num_cpus=ray_options.num_cpus,
            include_dashboard=False,
            _temp_dir=ray_options.temp_dir or made,
            _metrics_export_port=ray_options.metrics_port,
            log_to_driver=ray_options.log_to_driver,
            configure_logging=False,
        )
    except BaseException:
        if made:
            shutil.rmtree(made, ignore_errors=True)
        raise
    return made


def _python_signal_handlers() -> dict[int, object]:
    """The Python handlers of SIGTERM and SIGHUP now (main thread only), to put back after ray.init."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handlers = {s: signal.getsignal(s) for s in SIGNALS}
    return {s: h for s, h in handlers.items() if h is not None}


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)


def wait_ready(url: str, timeout_s: float) -> dict[str, object]:
    """Poll ``url/readyz`` until it answers 200 (its JSON returned); a backend that failed to
    open, or ``timeout_s`` passing, raises :class:`ServeError`."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read())
            except ValueError:
                body = {}
            if isinstance(body, dict) and body.get("error"):
                raise ServeError(str(body["error"])) from None
            last = f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            last = " ".join(str(e).split())
        time.sleep(0.25)
    raise ServeError(f"the service was not ready at {url}/readyz within {timeout_s:g} s ({last})")
