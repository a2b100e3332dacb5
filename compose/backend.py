"""The testbed interface: what ``qkdnet`` and the demo ask of a backend.

Two backends implement it: :class:`compose.netns.NetnsTestbed` (one network namespace per
host, one Linux bridge per domain; the default) and :class:`compose.docker.DockerTestbed`
(one container per host, one Docker network per domain). ``compose/cli.py`` picks one by
``--backend`` and talks to this interface only; so does ``compose/demo.py``.

A testbed is made from a topology file (``Backend(topology, run_dir, prefix=...)``) and
brought up with :meth:`Testbed.up`, or found while it runs with :meth:`Testbed.attach`.
Every name it creates starts with the topology's prefix; ``prefix`` overrides it (a copy of
the topology with the new prefix is written to the run directory: see :func:`with_prefix`).
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self, TypedDict, Unpack

import yaml

from compose import keyfiles
from compose.cliclient import CliOutput
from gmpls.topology import Topology, load

Progress = Callable[[str], None]
#: what a testbed is made from: a loaded topology or its file
TopologySource = Topology | str | os.PathLike[str]
#: where a testbed keeps its logs and state (None: the backend's default under ``run/``)
RunDir = str | os.PathLike[str] | None


class TestbedError(RuntimeError):
    """A testbed operation that cannot be done; the message says why and what to do."""

    __test__ = False  # not a pytest class, despite the name


class Capture(NamedTuple):
    """What :meth:`Testbed.up` captures: one pcap per domain, ``OUT_DIR/DOMAIN.pcap``."""

    domains: Sequence[str]
    out_dir: Path


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean tn1?"`` with the closest of ``known`` names, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def quiet(_line: str) -> None:
    """A progress callback that says nothing."""


def load_topology(topology: TopologySource) -> Topology:
    """The topology itself, or loaded from its file; it must come from a file (daemons and
    containers read that file)."""
    topo = topology if isinstance(topology, Topology) else load(Path(topology))
    if topo.path is None:
        raise TestbedError("the topology must be loaded from a file (daemons read it)")
    return topo


def with_prefix(topo: Topology, prefix: str, copy: Path) -> Topology:
    """``topo`` under another prefix: a copy of its file with ``prefix`` is written to
    ``copy`` and loaded (what the daemons are then given)."""
    assert topo.path is not None
    doc = yaml.safe_load(topo.path.read_text())
    doc["prefix"] = prefix
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(
        f"# {topo.path} with prefix {prefix} (written by qkdnet)\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    return load(copy)


class TestbedOptions(TypedDict, total=False):
    """The keywords every backend takes: ``prefix`` (default: the topology's) and
    ``progress`` (default: the backend's)."""

    prefix: str | None
    progress: Progress | None


class Testbed(ABC):
    """A topology brought up by one backend.

    ``run_dir`` holds logs and state (default ``run/...``); ``progress`` is called with
    one line per step.
    """

    __test__ = False

    #: the ``--backend`` value
    backend: ClassVar[str]
    #: what the messages call one testbed of this backend ("testbed", "Docker testbed")
    label: ClassVar[str]
    #: the option that selects this backend on the command line ("" for the default)
    option: ClassVar[str]
    #: the default run directory of topology NAME is ``run/`` this, with ``-PREFIX`` under
    #: another prefix than the topology's
    run_name: ClassVar[str] = "{name}"

    topology: Topology
    prefix: str
    run_dir: Path
    progress: Progress

    def __init__(
        self, topology: TopologySource, run_dir: RunDir = None, **options: Unpack[TestbedOptions]
    ) -> None:
        """Only loads the topology (and under another ``prefix`` writes its copy to the run
        directory, ``topology.yaml``): nothing is built before :meth:`up`. A backend's own
        keywords come before ``**options``, which it passes on here."""
        topo = load_topology(topology)
        self.prefix = options.get("prefix") or topo.prefix
        if run_dir is None:
            name = self.run_name.format(name=topo.name)
            run_dir = Path("run", name if self.prefix == topo.prefix else f"{name}-{self.prefix}")
        self.run_dir = Path(run_dir).resolve()
        self.progress = options.get("progress") or quiet
        if self.prefix != topo.prefix:
            topo = with_prefix(topo, self.prefix, self.run_dir / "topology.yaml")
        self.topology = topo

    # --- finding testbeds (no topology needed) ------------------------------------------
    @classmethod
    @abstractmethod
    def attach(cls, prefix: str, progress: Progress | None = None) -> Self:
        """The testbed that is up with ``prefix``."""

    @classmethod
    @abstractmethod
    def prefixes_up(cls) -> list[str]:
        """The prefixes of this backend's testbeds that exist now, sorted."""

    @classmethod
    @abstractmethod
    def remove(cls, prefix: str, progress: Progress = quiet) -> None:
        """Remove everything of the testbed ``prefix``; idempotent, works after a crash."""

    # --- up and down ----------------------------------------------------------------------
    @abstractmethod
    def up(self, start_daemons: bool = True, capture: Capture | None = None) -> Self:
        """Build the testbed and start its daemons (``start_daemons=False``: the network
        only). With ``capture``, packets are captured on those domains from as early as the
        backend can (see :meth:`capture_start`). On failure everything is removed again."""

    @abstractmethod
    def down(self) -> None:
        """Stop any capture and remove the testbed. Idempotent."""

    @contextlib.contextmanager
    def _building(self) -> Iterator[None]:
        """Around what :meth:`up` builds: on any failure, all of it is removed again (by
        :meth:`down`) and the error raised on."""
        try:
            yield
        except BaseException as e:
            self.progress(f"[{self.prefix}] failed: {e}; removing what was built")
            with contextlib.suppress(Exception):
                self.down()
            raise

    def make_secrets(self) -> Path:
        """Fresh key material for this bring-up in ``RUN/secrets/`` (:mod:`compose.keyfiles`:
        a random seed per emulator pair, a KM channel key per QKD link; folder 0700, files
        0600), which the daemons are given by file; the folder."""
        folder = self.run_dir / keyfiles.FOLDER
        made = keyfiles.write(self.topology, folder)
        if made:
            self.progress(f"[{self.prefix}] secrets: {len(made)} fresh files in {folder}")
        return folder

    def __enter__(self) -> Self:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- looking at it ----------------------------------------------------------------------
    @abstractmethod
    def status(self) -> dict[str, Any]:
        """What exists and runs now, per host and domain (JSON-serialisable)."""

    @staticmethod
    @abstractmethod
    def format_status(st: dict[str, Any]) -> str:
        """:meth:`status` as the table ``qkdnet status`` prints."""

    @abstractmethod
    def bridge(self, domain: str) -> str:
        """The Linux bridge that carries ``domain`` (where a host-side capture would run)."""

    def address(self, host_or_ip: str, domain: str | None = None) -> str:
        """An IP address: a host's address on ``domain`` (default: the control domain, or
        its only domain), or the argument itself when it is an address already."""
        topo = self.topology
        if host_or_ip not in topo.hosts:
            try:
                return str(ipaddress.IPv4Address(host_or_ip))
            except ValueError:
                raise TestbedError(
                    f"{host_or_ip!r} is neither a host of {topo.name} nor an IPv4 address"
                    + did_you_mean(host_or_ip, topo.hosts)
                ) from None
        h = topo.host(host_or_ip)
        if domain is None:
            domain = (
                topo.control_domain
                if topo.control_domain in h.interfaces
                else next(iter(h.interfaces))
            )
        if domain not in h.interfaces:
            raise TestbedError(f"{h.name} has no address on {domain}")
        return str(h.interfaces[domain])

    def check_host(self, name: str) -> str:
        """``name`` when it is a host of the topology; else an error with the closest names."""
        if name not in self.topology.hosts:
            raise TestbedError(
                f"no host {name!r} in {self.topology.name}"
                + did_you_mean(name, self.topology.hosts)
            )
        return name

    def check_domain(self, name: str) -> str:
        """``name`` when it is a domain of the topology; else an error with the closest."""
        if name not in self.topology.domains:
            raise TestbedError(
                f"no domain {name!r} in {self.topology.name}"
                + did_you_mean(name, self.topology.domains)
            )
        return name

    def check_reach(self, src: str, host: str) -> None:
        """An error saying why ``src`` cannot reach ``host``'s CLI: they share no domain
        (``--from etsiA`` to a node: etsiA has no interface on the control domain)."""
        topo = self.topology
        s, h = topo.host(self.check_host(src)), topo.host(self.check_host(host))
        ctrl = topo.control_domain
        domain = ctrl if ctrl in h.interfaces else next(iter(h.interfaces), None)
        if domain is not None and domain not in s.interfaces:
            on = ", ".join(s.interfaces) or "no domain"
            others = [x.name for x in topo.hosts.values() if domain in x.interfaces][:3]
            raise TestbedError(
                f"{src} has no interface on {domain} (it is on {on}), so it cannot reach "
                f"{host}'s CLI at {h.interfaces[domain]}; connect from a host on {domain} "
                f"({', '.join(others)}) or from {host} itself (no --from)"
            )

    # --- processes in a host ------------------------------------------------------------------
    @abstractmethod
    def exec(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` of ``argv`` inside the host (keywords passed on)."""

    @abstractmethod
    def popen(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` of ``argv`` inside the host (keywords passed on)."""

    @abstractmethod
    def interact(self, host: str, argv: Sequence[str]) -> int:
        """Run ``argv`` inside the host with this terminal attached; its exit status."""

    # --- the host's daemon ------------------------------------------------------------------
    @abstractmethod
    def stop(self, host: str) -> Mapping[int, int | None]:
        """Stop the host's daemon: {pid: exit status, None when unknown} of what stopped
        (empty when nothing ran)."""

    @abstractmethod
    def start(self, host: str) -> list[int]:
        """Start the host's daemon again; the pids running now. An error if it runs."""

    # --- faults: optional, a backend without them says how to make them by hand ------------
    #: that hint ("" on a backend with faults)
    faults_hint: ClassVar[str] = ""

    def link(self, host: str, domain: str, up: bool) -> None:
        """Cut ``host`` off ``domain`` or reconnect it."""
        raise self._no_faults("link")

    def impair(
        self,
        domain: str,
        loss: float | None = None,
        delay_ms: float | None = None,
        jitter_ms: float | None = None,
    ) -> None:
        """Random loss (percent) and delay/jitter (ms) on ``domain``."""
        raise self._no_faults("impair")

    def clear_impair(self, domain: str) -> None:
        """Remove ``domain``'s impairments."""
        raise self._no_faults("impair")

    def _no_faults(self, what: str) -> TestbedError:
        return TestbedError(
            f"{what} is not available on the {self.backend} backend{self.faults_hint}"
        )

    # --- talking to it ----------------------------------------------------------------------
    @abstractmethod
    def cli(
        self, host: str, command: str, via: str | None = None, timeout: float = 10.0
    ) -> CliOutput:
        """One command on the host's telnet CLI, connecting from ``via`` (default: the host
        itself) to the host's control address and ``cli_port``; the output, with the
        command's ``status`` (0 ok, 1 failed: docs/qkdnet.md#the-node-cli)."""

    @abstractmethod
    def cli_session(self, host: str, via: str | None = None) -> int:
        """An interactive session on the host's CLI (``qkdnet cli HOST``); its status."""

    @abstractmethod
    def ping(self, host: str, target: str, timeout: float = 1.0, count: int = 1) -> bool:
        """ICMP echo from ``host`` to ``target`` (host name or address); True on a reply."""

    @abstractmethod
    def probe(
        self,
        host: str,
        target: str,
        count: int = 3,
        timeout: float = 1.0,
        interval: float = 0.2,
        first: bool = False,
    ) -> list[float | None]:
        """``count`` ICMP echo requests from ``host`` to ``target``: each one's round-trip
        time in ms, None when lost (``first``: stop at the first reply)."""

    # --- captures ---------------------------------------------------------------------------
    @abstractmethod
    def capture_start(self, domains: Sequence[str], out_dir: Path) -> None:
        """Capture every packet crossing each of ``domains`` once; returns when listening."""

    @abstractmethod
    def capture_file(self, domain: str) -> Path:
        """The pcap of ``domain`` holding what was captured so far (capture still running)."""

    @abstractmethod
    def capture_stop(self) -> dict[str, Path]:
        """Stop capturing; the pcap of each domain (``OUT_DIR/DOMAIN.pcap``)."""
