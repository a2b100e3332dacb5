"""What a running testbed has created, on disk, so another process (or a later
``qkdnet down`` after a crash) can find and remove it.

``RUN/state.json`` lists every namespace, bridge, veth, firewall rule and daemon (with pid
and start time) the moment it is created. A global index, one small file per prefix in
``/run/qkdnet`` (or ``/tmp/qkdnet`` when ``/run`` is not writable), points from the prefix
to that state file, so ``qkdnet down`` without an argument finds the testbed.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def index_dir() -> Path:
    env = os.environ.get("QKDNET_INDEX")
    if env:
        return Path(env)
    for base in (Path("/run"), Path("/tmp")):
        d = base / "qkdnet"
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    raise OSError("neither /run/qkdnet nor /tmp/qkdnet is writable")


@dataclass
class Daemon:
    """One process started for a host (FRR hosts have two: zebra and ospfd)."""

    name: str
    argv: list[str]
    pid: int
    started: int | None
    log: str


@dataclass
class State:
    prefix: str
    name: str
    topology: str
    run_dir: str
    status: str = "building"  # building | up | down
    up_pid: int = 0
    namespaces: list[str] = field(default_factory=list)
    bridges: list[str] = field(default_factory=list)
    veths: list[str] = field(default_factory=list)
    fw_rules: list[list[str]] = field(default_factory=list)
    daemons: dict[str, list[Daemon]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    links_down: list[list[str]] = field(default_factory=list)
    impairments: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``up --pack N``: the processes that each run many daemons (``python -m compose.pack``)
    packs: list[Daemon] = field(default_factory=list)
    #: a packed host: the name of its pack (``pack-K``, one of ``packs``)
    packed: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / "state.json"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> State:
        d = dict(d)
        daemons = {h: [Daemon(**p) for p in ps] for h, ps in d.pop("daemons", {}).items()}
        packs = [Daemon(**p) for p in d.pop("packs", [])]
        known = set(cls.__dataclass_fields__)
        st = cls(**{k: v for k, v in d.items() if k in known})
        st.daemons = daemons
        st.packs = packs
        return st

    def save(self) -> None:
        """Write state.json and the index entry atomically (rename over the old file)."""
        _atomic_write(self.path, json.dumps(self.to_json(), indent=1) + "\n")
        entry = {"prefix": self.prefix, "name": self.name, "state": str(self.path)}
        index = index_dir() / f"{self.prefix}.json"
        if getattr(self, "_indexed", None) != index or not index.exists():
            _atomic_write(index, json.dumps(entry) + "\n")
            self._indexed = index

    def forget(self) -> None:
        """Remove the state file and the index entry (logs in the run directory stay)."""
        for p in (self.path, index_dir() / f"{self.prefix}.json"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_state(path: Path) -> State | None:
    try:
        return State.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return None


def indexed() -> dict[str, Path]:
    """Every testbed in the global index: {prefix: path of its state.json}."""
    out: dict[str, Path] = {}
    try:
        entries = sorted(index_dir().glob("*.json"))
    except OSError:
        return out
    for f in entries:
        try:
            d = json.loads(f.read_text())
            out[str(d["prefix"])] = Path(d["state"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def forget_index(prefix: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (index_dir() / f"{prefix}.json").unlink()
