import json
import threading

from finrisk.audit import read_events, record, verify


def test_chain_verifies_and_detects_edits_deletions_and_reordering(tmp_path):
    log = tmp_path / "audit.log"
    for i in range(5):
        record(log, "run", f"command-{i}", {"i": i}, actor="analyst1")
    assert verify(log).ok and verify(log).events == 5
    lines = log.read_text().splitlines()

    edited = json.loads(lines[2])
    edited["actor"] = "someone-else"
    log.write_text("\n".join(lines[:2] + [json.dumps(edited, sort_keys=True)] + lines[3:]) + "\n")
    result = verify(log)
    assert not result.ok and "line 3 was altered" in result.problem

    log.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    assert "line 3 does not follow" in verify(log).problem

    log.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    assert not verify(log).ok


def test_concurrent_writers_never_break_the_chain(tmp_path):
    log = tmp_path / "audit.log"
    threads = [
        threading.Thread(target=lambda n=n: [record(log, "view", f"C{n}-{i}") for i in range(20)]) for n in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert verify(log).ok
    assert len(read_events(log)) == 80


def test_cli_commands_are_audited_and_verify_reports_tampering(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from finrisk.cli import app
    from finrisk.config import get_settings

    log = get_settings().audit_log  # the session's temporary audit log (tests/conftest.py)
    runner = CliRunner()
    assert runner.invoke(app, ["services", "status"]).exit_code == 0
    events = read_events(log)
    assert events[-1]["action"] == "command" and events[-1]["target"] == "services"
    ok = runner.invoke(app, ["audit", "--verify"])
    assert ok.exit_code == 0 and "intact" in ok.output
    log.write_text(log.read_text().replace('"services"', '"tampered"', 1))
    bad = runner.invoke(app, ["audit", "--verify"])
    assert bad.exit_code == 1 and "altered" in bad.output
