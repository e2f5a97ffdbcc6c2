"""chaosk3s.redact: what counts as a secret, in structures, free text and
logs, and the file modes of everything chaosk3s writes."""

import io
import json
import logging
import os
import stat
import time

import pytest

from chaosk3s.files import owner_only, write_atomically
from chaosk3s.redact import (
    REDACTED,
    Redactor,
    for_experiment,
    redact,
    redact_journal,
    scrub_patterns,
)
from chaosk3s.redact_logs import LogRedaction, protect_logs

# (text, the secret in it): each must vanish from the scrubbed text.
PLANTED = [
    ("GET https://alice:pa55w0rd-x@git.example.com/repo", "pa55w0rd-x"),
    ("https://ghp_tok3n@github.com/o/r", "ghp_tok3n"),
    ("see https://h.example/cb?access_token=at-123456&page=2",
     "at-123456"),
    ("https://blob.example/x?sv=2022&sig=SiGn4tur3%3D&se=1", "SiGn4tur3"),
    ("https://api.example/v1?key=AIzaKey987&q=1", "AIzaKey987"),
    ("https://s3.example/o?X-Amz-Signature=abcd1234ef", "abcd1234ef"),
    ("https://s3.example/o?X-Amz-Credential=AKIAXYZ%2F2024", "AKIAXYZ"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sIgNaT",
     "eyJhbGciOiJIUzI1NiJ9"),
    ("{'Authorization': 'Basic dXNlcjpwYXNz', 'Accept': '*/*'}",
     "dXNlcjpwYXNz"),
    ("proxy-authorization=Negotiate YIIGhgYJKoZ", "YIIGhgYJKoZ"),
    ("requests.exceptions.HTTPError: 401 for Bearer tok-live-42",
     "tok-live-42"),
    ("token eyJraWQiOiJhIn0.eyJpc3MiOiJrIn0.c2lnbmF0dXJl in a message",
     "eyJpc3MiOiJrIn0"),
    ("login failed: password=hunter2hunter2 for root", "hunter2hunter2"),
    ('{"db_password": "p4ssw0rd!", "replicas": 3}', "p4ssw0rd!"),
    ("users:\n- name: admin\n  user:\n    token: kube-t0ken-99\n",
     "kube-t0ken-99"),
    ("    client-key-data: LS0tLS1CRUdJTiBFQyBQUklW\n",
     "LS0tLS1CRUdJTiBFQyBQUklW"),
    ("kubectl --token sa-t0ken-7 get nodes", "sa-t0ken-7"),
    ("curl --api-key=k-998877 https://x", "k-998877"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END "
     "OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXk"),
]
# Ordinary text that must stay as it is.
KEPT = [
    "KeyError: 'target'",
    "2026-11-25T21:39:50.123456+00:00",
    "on node agent-0: `iptables -S CHAOSK3S-1125a` exited 1: no chain",
    "ssh -p 22 -l root 10.213.11.20",
    "monkey: banana, keyboard_layout=de",
    "-A CHAOSK3S-0101abcd1 -d 10.213.11.10/32 -m comment --comment "
    "chaosk3s:0101abcd1 -j DROP",
    "Host key verification failed.",
    "http://10.213.11.10:6443/api/v1/nodes?labelSelector=a%3Db",
    "Its keys: fault_ttl, lab_spec; unknown key: foo",
]


@pytest.mark.parametrize(("text", "secret"), PLANTED)
def test_secret_looking_text_is_hidden(text, secret):
    scrubbed = scrub_patterns(text)
    assert secret not in scrubbed
    assert REDACTED in scrubbed
    assert scrub_patterns(scrubbed) == scrubbed  # idempotent


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_text_is_kept(text):
    assert scrub_patterns(text) == text


def test_known_values_are_hunted_as_written_and_escaped():
    kubeconfig = "apiVersion: v1\nusers:\n- user: {token: \"x'y\"}\n"
    redactor = Redactor(["s3cr3t-value", kubeconfig, "abc", 12345678,
                         True, None])
    assert redactor.text("got s3cr3t-value back") == \
        f"got {REDACTED} back"
    assert REDACTED in redactor.text(json.dumps({"k": kubeconfig}))
    assert "x'y" not in redactor.text(repr({"k": kubeconfig}))
    assert redactor.text("id 12345678") == f"id {REDACTED}"
    # too short to hunt for in free text (it would hide words)
    assert redactor.text("abc and True") == "abc and True"


def test_structures_by_key_name_references_and_secrets_blocks():
    config = {"monkey": "visible", "ssh_key": "/root/.ssh/id",
              "apiKey": "k1", "kubeconfig_inline": "apiVersion: v1",
              "webhooks": {"finish": "https://hooks.example/T0/B0/x"},
              "sig": "s", "replicas": 3,
              "token": {"type": "env", "key": "TOKEN_VAR",
                        "default": "dflt"}}
    shown = redact(config)
    assert shown["monkey"] == "visible" and shown["replicas"] == 3
    for key in ("ssh_key", "apiKey", "kubeconfig_inline", "sig"):
        assert shown[key] == REDACTED, key
    assert shown["webhooks"] == {"finish": REDACTED}
    assert shown["token"] == {"type": "env", "key": "TOKEN_VAR",
                              "default": REDACTED}


def test_experiment_secrets_are_hunted_everywhere_in_a_journal():
    experiment = {
        "configuration": {"target": "lab", "api_token": "cfg-tok-1"},
        "secrets": {"k8s": {"KUBERNETES_HOST": "https://10.9.9.9:6443",
                            "api": {"type": "env", "key": "API_TOKEN"}}}}
    redactor = for_experiment(experiment, secrets={
        "k8s": {"KUBERNETES_HOST": "https://10.9.9.9:6443",
                "api": "env-resolved-tok"}})
    journal = {
        "experiment": experiment,
        "run": [{"output": "reached https://10.9.9.9:6443 with "
                           "env-resolved-tok and cfg-tok-1",
                 "exception": ["Traceback\n", "ValueError: cfg-tok-1\n"]}],
        "chaosk3s": {"nodes": {"key-server-0": {"role": "agent"}},
                     "faults": [{"description": "cut cfg-tok-1"}],
                     "variables": {"api_token": "cfg-tok-1"}}}
    text = json.dumps(redact_journal(journal, redactor))
    for secret in ("10.9.9.9", "env-resolved-tok", "cfg-tok-1"):
        assert secret not in text, secret
    shown = redact_journal(journal, redactor)
    # node names are keys, not secrets: the section keeps them
    assert shown["chaosk3s"]["nodes"] == {"key-server-0": {"role": "agent"}}
    assert shown["experiment"]["secrets"]["k8s"]["api"] == {
        "type": "env", "key": "API_TOKEN"}
    assert journal["experiment"]["configuration"]["api_token"] == \
        "cfg-tok-1"  # a copy: the run's own data is untouched


def test_deep_nesting_is_cut_not_recursed():
    value: object = "bottom"
    for _ in range(5000):
        value = [value]
    assert "nested deeper" in json.dumps(redact(value))


def test_hostile_text_scrubs_in_linear_time():
    for text in ("a-" * 200_000, "a." * 200_000, "x://" * 100_000,
                 "'a': '" * 70_000, "?a=" * 130_000):
        started = time.monotonic()
        scrub_patterns(text)
        assert time.monotonic() - started < 2, text[:8]


def test_log_records_and_tracebacks_are_redacted(tmp_path):
    stream = io.StringIO()
    logger = logging.getLogger("chaosk3s-test-redaction")
    handler = logging.StreamHandler(stream)
    handler.addFilter(LogRedaction(Redactor(["planted-7788"])))
    logger.addHandler(handler)
    try:
        logger.warning("calling %s with %s", "https://u:pw1234@h/",
                       {"Authorization": "Bearer abcdef123"})
        try:
            raise RuntimeError("planted-7788 in the message")
        except RuntimeError:
            logger.exception("failed ?access_token=qwerty99")
        logger.warning("bad %d args", "not-a-number")  # no exception
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    for secret in ("pw1234", "abcdef123", "planted-7788", "qwerty99"):
        assert secret not in out
    assert "RuntimeError" in out and "Traceback" in out


def test_protect_logs_makes_log_files_owner_only(tmp_path):
    os.umask(0o022)
    path = tmp_path / "chaostoolkit.log"
    handler = logging.FileHandler(path)
    logger = logging.getLogger("chaosk3s-test-protect")
    logger.addHandler(handler)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        protect_logs(Redactor(["file-secret-1"]))
        protect_logs(Redactor(["file-secret-2"]))  # replaces, not stacks
        assert [type(f) for f in handler.filters] == [LogRedaction]
        logger.warning("file-secret-2 here")
        handler.flush()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "file-secret-2" not in path.read_text()
    finally:
        logger.removeHandler(handler)
        for other in logging.getLogger().handlers + [handler]:
            for found in [f for f in other.filters
                          if isinstance(f, LogRedaction)]:
                other.removeFilter(found)
        handler.close()


def test_artefacts_are_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        target = tmp_path / "reports" / "journal.json"
        write_atomically(target, "{}")
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        log = tmp_path / "run.log"
        log.write_text("kept")
        log.chmod(0o666)
        owner_only(log)
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        assert log.read_text() == "kept"  # never truncated
        owner_only(tmp_path / "new.json")
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == \
            0o600
    finally:
        os.umask(old)


def test_odd_shapes_never_break_redaction():
    odd = {"type": [], "a": {"type": {"b": 1}, "token": "t0ken-x"},
           "secrets": "not a mapping", 3: None}
    shown = redact(odd)
    assert shown["a"]["token"] == REDACTED and shown["type"] == []
    redactor = for_experiment({"secrets": [1, {"type": ["env"]}],
                               "configuration": "x"})
    assert redactor.text("no secret") == "no secret"
