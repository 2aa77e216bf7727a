"""A real IMAP server for the tests: Debian's Dovecot, run unprivileged on free ports.

``Dovecot`` writes a throw-away configuration (passwd-file users, Maildir homes, a certificate for
IMAPS issued by a test CA made with ``trustme``), starts ``dovecot -F`` as an unprivileged user
(``nobody`` when the tests run as root, the current user otherwise) and can stop, restart and
reset a folder's UIDVALIDITY with ``doveadm``.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import json
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import trustme
from imapclient import IMAPClient

from pipeline.broker import free_port, port_open

USERS = 40
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = feedback-test-{imap_port}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
first_valid_gid = 1
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
disable_plaintext_auth = no
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
mail_location = maildir:~/Maildir
mail_fsync = never
imap_idle_notify_interval = 1 secs
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u allow_all_users=yes
}}
service imap-login {{
  chroot =
  service_count = 0
  process_min_avail = 1
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
service doveadm {{
  unix_listener doveadm-server {{
    mode = 0666
  }}
}}
"""


def _run_as() -> tuple[str, str, int, int]:
    """Dovecot refuses root for mail processes: run as ``nobody`` under root, else as ourselves."""
    entry = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    group = grp.getgrgid(entry.pw_gid).gr_name
    return entry.pw_name, group, entry.pw_uid, entry.pw_gid


class Dovecot:
    """One Dovecot instance: plain IMAP on ``imap_port``, IMAPS on ``imaps_port`` (cert for 127.0.0.1)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="feedback-dovecot-"))
        self.user, self.group, self.uid, self.gid = _run_as()
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.users: dict[str, str] = {}
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        self.cafile = self.root / "ca.pem"
        ca.cert_pem.write_to_path(str(self.cafile))
        leaf.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
        leaf.private_key_pem.write_to_path(str(self.root / "key.pem"))
        self.tokens: dict[str, str] = {}  # XOAUTH2 access token -> user, checked by _Introspection
        self._introspection = _Introspection(self.tokens)
        (self.root / "oauth2.conf.ext").write_text(
            f"introspection_mode = post\nintrospection_url = {self._introspection.url}\n"
            "force_introspection = yes\nusername_attribute = username\nactive_attribute = active\n"
            "active_value = true\n")
        self.config = self.root / "dovecot.conf"
        self.config.write_text(CONFIG.format(
            root=self.root, user=self.user, group=self.group, uid=self.uid, gid=self.gid,
            imap_port=self.imap_port, imaps_port=self.imaps_port,
        ))
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir()
        tag = self.root.name[-4:].lower().replace("_", "x")
        self._pool = {f"u{tag}{i:02d}": f"pw-{i}-{tag}" for i in range(USERS)}
        self._free = list(self._pool)
        (self.root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self._pool.items()))
        self.proc: subprocess.Popen[bytes] | None = None
        self._chown()

    def _chown(self) -> None:
        if os.geteuid() != 0:
            return
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, self.uid, self.gid)
        (self.root / "key.pem").chmod(0o600)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        extra = {"user": self.uid, "group": self.gid, "extra_groups": []} if os.geteuid() == 0 else {}
        out = open(self.root / "stdout.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)], stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True, **extra)  # type: ignore[call-overload]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.proc.returncode}:\n{self.log()}")
            if port_open("127.0.0.1", self.imap_port) and port_open("127.0.0.1", self.imaps_port) and self._greets():
                return
            time.sleep(0.1)
        raise RuntimeError(f"dovecot did not listen within {timeout}s:\n{self.log()}")

    def _greets(self) -> bool:
        """True once a login process answers with its greeting (under load it may close at first)."""
        try:
            conn = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=5)
        except (OSError, imaplib.IMAP4.error):
            return False
        with contextlib.suppress(Exception):
            conn.logout()
        return True

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and port_open("127.0.0.1", self.imap_port):
            time.sleep(0.05)

    def close(self) -> None:
        self.stop()
        self._introspection.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        parts = []
        for name in ("dovecot.log", "stdout.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    # -- users and mail ----------------------------------------------------------------------
    def add_user(self, prefix: str = "user") -> str:
        """A user of the passwd-file (written once at start: Dovecot re-reads it only per second)."""
        name = self._free.pop(0)
        self.users[name] = self._pool[name]
        return name

    def client(self, user: str, ssl_mode: bool = False, attempts: int = 5) -> IMAPClient:
        for attempt in range(attempts):
            try:
                return self._client(user, ssl_mode)
            except (OSError, imaplib.IMAP4.abort):  # a loaded machine: the login process was not ready
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _client(self, user: str, ssl_mode: bool) -> IMAPClient:
        if ssl_mode:
            ctx = ssl.create_default_context(cafile=str(self.cafile))
            client = IMAPClient("127.0.0.1", port=self.imaps_port, ssl=True, ssl_context=ctx, timeout=30)
        else:
            client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client

    def append(self, user: str, messages: Iterable[bytes], folder: str = "INBOX",
               when: datetime | None = None) -> int:
        """APPEND ``messages`` to ``folder`` (created when missing); returns how many."""
        n = 0
        with self.client(user) as c:
            if folder != "INBOX" and not c.folder_exists(folder):
                c.create_folder(folder)
            for raw in messages:
                c.append(folder, raw, msg_time=when)
                n += 1
        return n

    def uids(self, user: str, folder: str = "INBOX") -> list[int]:
        with self.client(user) as c:
            c.select_folder(folder, readonly=True)
            return sorted(c.search("ALL"))

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as c:
            return int(c.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        """Give ``folder`` a new UIDVALIDITY (as a server migration would); returns it."""
        new = self.uidvalidity(user, folder) + 1000
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(new), folder)
        return new

    def doveadm(self, *args: str) -> str:
        extra = {"user": self.uid, "group": self.gid, "extra_groups": []} if os.geteuid() == 0 else {}
        result = subprocess.run([DOVEADM, "-c", str(self.config), *args], capture_output=True,
                                text=True, timeout=30, **extra)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr}")
        return str(result.stdout)


class _Introspection:
    """The OAuth2 token-introspection endpoint Dovecot asks (RFC 7662): a local HTTP server."""

    def __init__(self, tokens: dict[str, str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                token = parse_qs(body).get("token", [""])[0]
                user = tokens.get(token)
                answer = {"active": "true", "username": user} if user else {"active": "false"}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def available() -> bool:
    return Path(DOVECOT).exists() and Path(DOVEADM).exists()
