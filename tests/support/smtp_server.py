"""A real SMTP server for the tests (aiosmtpd). Each message is written to --dir as one JSON file (envelope, whether
TLS and authentication were used, the raw message) before the server answers 250, so a client that got its answer
finds the file. With --tls-cert/--tls-key it requires STARTTLS (with --implicit-tls, TLS from the first byte); with --user/--password it requires authentication.
With --echo-auth every authentication fails with a reply that repeats what the client sent (the AUTH response's
base64, then the decoded user and password), as some servers do.
Prints READY once listening; stops when its standard input closes (the test that started it ended)."""

import argparse
import base64
import json
import os
import ssl
import sys
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Save:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "tls": session.ssl is not None or server.transport.get_extra_info("sslcontext") is not None,
            "authenticated": bool(session.authenticated),
            "data": envelope.content.decode("utf-8", "replace"),
        }
        name = uuid.uuid4().hex
        path = os.path.join(self.out, name + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--echo-auth", action="store_true")
    args = parser.parse_args()

    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    def authenticate(server, session, envelope, mechanism, auth_data):
        if args.echo_auth and isinstance(auth_data, LoginPassword):
            login, password = auth_data.login, auth_data.password
            if mechanism == "PLAIN":
                sent = base64.b64encode(b"\0" + login + b"\0" + password).decode()
            else:
                sent = base64.b64encode(login).decode() + " " + base64.b64encode(password).decode()
            echo = f"535 5.7.8 AUTH {mechanism} {sent} refused for {login.decode()} with {password.decode()}"
            return AuthResult(success=False, handled=False, message=echo)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok)

    implicit = tls if args.implicit_tls else None
    starttls = None if args.implicit_tls else tls
    controller = Controller(
        Save(args.dir),
        hostname="127.0.0.1",
        port=args.port,
        ssl_context=implicit,
        tls_context=starttls,
        require_starttls=starttls is not None,
        authenticator=authenticate if args.user else None,
        auth_required=bool(args.user),
        auth_require_tls=starttls is not None,
    )
    controller.start()
    print("READY", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
