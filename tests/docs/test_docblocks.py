"""The docs-as-tests parser and output matcher (tests/support/docblocks.py), on made-up docs."""

from __future__ import annotations

from tests.support.docblocks import ROOT, Command, missing_output, parse, run_command

DOC = """# A doc

<!-- docs-test: testbed paper -->

```console
$ qkdnet cli tn1 show ip ospf neighbor   # the neighbours
Neighbor ID     Pri State
10.1.1.2          1 Full/...
$ qkdnet cli tn1 show bogus   # exit 1: no such command
% Unknown command
$ qkdnet topo gen ring --nodes 6 \\
    --out /tmp/ring6.yaml
```

Some prose.

<!-- docs-test: skip opens the Wireshark GUI -->
```console
$ wireshark /tmp/qkd/ctrl.pcap
```
"""


def test_blocks_commands_exit_status_and_output() -> None:
    p = parse(DOC, "x.md")
    assert p.problems == []
    first, second = p.blocks
    assert (first.id, first.testbed, first.skip) == ("x.md:5", "paper", None)
    a, b, c = first.commands
    assert (a.line, a.text, a.exit) == (
        6,
        "qkdnet cli tn1 show ip ospf neighbor   # the neighbours",
        0,
    )
    assert a.output == ["Neighbor ID     Pri State", "10.1.1.2          1 Full/..."]
    assert (b.line, b.exit, b.output) == (9, 1, ["% Unknown command"])
    assert c.text == "qkdnet topo gen ring --nodes 6 \\\n    --out /tmp/ring6.yaml"
    assert (c.line, c.output) == (11, [])
    assert (second.skip, second.testbed, len(second.commands)) == (
        "opens the Wireshark GUI",
        None,
        1,
    )


def test_what_breaks_the_conventions_is_named_with_its_line() -> None:
    doc = "\n".join(
        [
            "```console",  # 1: no directive
            "$ qkdnet status",
            "```",
            "```sh",  # 4
            "qkdnet down",
            "```",
            "```",  # 7
            "$ qkdnet up x",
            "```",
            "<!-- docs-test: testbed paper -->",  # 10: not followed by a block
            "prose",
            "<!-- docs-test: tesbed paper -->",  # 12
            "```console",
            "output first",  # 14
            "$ true",
            "```",
        ]
    )
    assert parse(doc, "d.md").problems == [
        "d.md:1: console block without <!-- docs-test: testbed ... -->",
        "d.md:4: ```sh block: commands go in ```console blocks",
        "d.md:8: `$ ` line outside a console block",
        "d.md:10: docs-test directive not before a block",
        "d.md:12: unknown docs-test directive 'tesbed paper'",
        "d.md:13: console block without <!-- docs-test: testbed ... -->",
        "d.md:14: output before any `$ ` command",
    ]


def test_a_longer_fence_quotes_console_blocks_without_running_them() -> None:
    doc = "````markdown\n<!-- docs-test: testbed paper -->\n```console\n$ qkdnet up\n```\n````\n"
    p = parse(doc, "q.md")
    assert (p.blocks, p.problems) == ([], [])


def test_output_lines_in_order_spaces_collapsed_and_elisions() -> None:
    printed = "Neighbor ID   Pri State\n10.1.1.2    1   Full/DR   33.1s\nnoise\n10.1.1.3 1 Full/-\n"
    assert missing_output(["Neighbor ID Pri State", "10.1.1.2 1 Full/..."], printed) is None
    assert missing_output(["...", "10.1.1.3 1 Full/-", ""], printed) is None
    assert missing_output(["... Full/-"], printed) is None
    # whole lines: a shown line is not a substring search
    assert missing_output(["10.1.1.2 1 Full/DR"], printed) == "10.1.1.2 1 Full/DR"
    # order matters
    assert missing_output(["10.1.1.3 1 Full/-", "10.1.1.2 ..."], printed) == "10.1.1.2 ..."
    # regex characters in the doc are literal
    assert missing_output(["10.1.1.2 1 Full/DR 33.1."], printed) == "10.1.1.2 1 Full/DR 33.1."


def test_a_command_runs_from_the_root_with_the_venv_on_path_and_sudo() -> None:
    ran = run_command(Command(1, "command -v qkdnet; sudo -n pwd; echo err >&2; exit 3"))
    assert ran.status == 3
    assert ran.output.splitlines() == [str(ROOT / ".venv/bin/qkdnet"), str(ROOT), "err"]
