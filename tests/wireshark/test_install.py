"""``qkdnet wireshark install`` puts the plugin where Wireshark looks for personal Lua
plugins, and tshark started with that HOME loads it; the tshark command ``qkdnet demo
--capture`` prints loads the plugin of this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compose import wireshark
from compose.cli import main
from gmpls.qkd import etsi004 as etsi
from tests.support.pcap import ethernet_frame, ipv4_packet, udp_datagram, write_pcap
from tests.support.tshark import REQUIRED, TSHARK


def test_install_copies_the_plugin_into_the_personal_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["wireshark", "install"]) == 0
    dest = tmp_path / ".local" / "lib" / "wireshark" / "plugins" / "qkdnet.lua"
    assert dest.read_bytes() == wireshark.PLUGIN.read_bytes()
    assert str(dest) in capsys.readouterr().out
    # again: replaced, not refused
    assert main(["wireshark", "install"]) == 0
    other = tmp_path / "elsewhere"
    assert main(["wireshark", "install", "--folder", str(other)]) == 0
    assert (other / "qkdnet.lua").is_file()


@pytest.mark.interop
def test_tshark_loads_the_installed_plugin(tmp_path: Path) -> None:
    assert TSHARK, REQUIRED
    env = {**os.environ, "HOME": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "compose.cli", "wireshark", "install"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "installed" in r.stdout
    folders = subprocess.run(
        [TSHARK, "-G", "folders"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert f"{tmp_path}/{wireshark.PERSONAL_FOLDER}" in folders
    protocols = subprocess.run(
        [TSHARK, "-G", "protocols"], env=env, capture_output=True, text=True, check=True
    ).stdout
    names = {line.split("\t")[2] for line in protocols.splitlines() if line.count("\t") >= 2}
    assert set(wireshark.PROTOCOLS) <= names
    # installed and given with -X as well: loaded once, no error, decodes
    pcap = tmp_path / "one.pcap"
    payload = etsi.encode(etsi.GetKey(1, bytes(64)))
    seg = udp_datagram("10.2.1.1", "10.2.1.11", 40000, etsi.PORT, payload)
    write_pcap(str(pcap), [ethernet_frame(ipv4_packet("10.2.1.1", "10.2.1.11", 17, seg))])
    r = subprocess.run(
        wireshark.tshark_command(pcap, "-T", "fields", "-e", "qkdnet.etsi004.type"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0 and "Lua" not in r.stderr, r.stderr
    assert r.stdout.split() == ["0x04"]


def test_demo_tshark_command_loads_this_checkouts_plugin() -> None:
    cmds = wireshark.tshark_commands({"ctrl": "/tmp/caps/ctrl.pcap"})
    argv = cmds["ctrl"]
    assert argv[:3] == ["tshark", "-X", f"lua_script:{wireshark.PLUGIN}"]
    assert argv[3:5] == ["-r", "/tmp/caps/ctrl.pcap"] and wireshark.PLUGIN.is_absolute()


def test_demo_with_capture_prints_the_tshark_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``qkdnet demo --capture DIR`` ends with one tshark command per capture (the demo
    itself is replaced here: the namespace test runs the real one)."""
    from compose import cli, demo

    captures = {"ctrl": "/tmp/caps/ctrl.pcap", "qa": "/tmp/caps/qa.pcap"}
    result = demo.Result(1.0, ["10.1.1.1", "10.1.1.5"], [], {"tn1": "ab", "tn5": "ab"}, captures)
    roles = demo.Roles("tn1", "tn5", "client", "pce", ["tn1", "tn5"], ["tn1", "tn5"])

    class Bed:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        @classmethod
        def prefixes_up(cls) -> list[str]:
            return []  # nothing up: the demo brings its own testbed

    monkeypatch.setitem(cli.BACKENDS, "netns", Bed)  # type: ignore[arg-type]
    monkeypatch.setattr(demo, "run", lambda *a, **k: (result, roles))
    paper = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
    assert main(["demo", str(paper), "--capture", "/tmp/caps"]) == 0
    out = capsys.readouterr().out.splitlines()
    i = out.index("read the captures with the qkdnet Wireshark plugin (docs/wireshark.md):")
    for line, (domain, pcap) in zip(out[i + 1 :], captures.items(), strict=True):
        assert line.split() == ["tshark", *wireshark.tshark_commands({domain: pcap})[domain][1:]]
