#!/usr/bin/env python3
"""Launcher for SyTest's `-I Generic` plugin: starts dendrite-lite.

The project's own copy of ../shared/sytest/examples/dendrite-lite-launch.py, kept in step with
our config (the shared one is read-only). Differences: push.ca_file trusts SyTest's CA, so its
push gateway (HTTPS with a certificate from that CA) receives our notifications; identity servers
are reached without checking their certificate, on loopback (SyTest's is self-signed). Run SyTest with
    SYTEST_LAUNCHER=$PWD/scripts/sytest-launch.py bash ../shared/sytest/run.sh /tmp/st

SyTest runs `sh -c "exec <this script>"` in the homeserver's directory with SYTEST_HS_CONFIG
pointing at sytest-hs.json (see lib/SyTest/Homeserver/Generic.pm). Like synapse-launch.py this
translates that file into the server's own config, makes the signing key and execs the server in
the foreground, so SyTest's SIGINT (SIGKILL after 30 s) reaches `dendrite-lite run` directly.

Usage: --hs-command '/path/to/python3 /path/to/dendrite-lite-launch.py'
  DENDRITE_LITE: the `dendrite-lite` executable (default: $TOOLS/dl-venv/bin/dendrite-lite,
                 TOOLS=~/.cache/mx-tools). SyTest keeps its own environment, so exported
                 variables reach the launcher.
  DL_LOG_LEVEL:  debug | info (default; includes one access-log line per request) | warning
  DL_FED_VERIFY: 1 (default): verify other servers' TLS against SyTest's CA (federation.ca_file);
                 0: federation.verify_tls = false.
  DL_PLAIN_HTTP: 1 (default): also serve the client API over plain http on the unsecure port
                 (needed for --hs-client-scheme http), see below; 0: don't.

What dendrite-lite can and cannot be told (dendrite_lite/config.py):
  * [tls] mode = "files" applies to every listener of the process: it cannot serve plain http on
    one port and https on another. Its client listener already serves every route (client +
    federation + key API), so it listens on the SECURE port (server_name's port) over TLS and
    [listen] federation = "" (a separate federation listener only serves the federation routes).
    The plain-http client API on the UNSECURE port is a byte forwarder in a child of this
    launcher (http in, TLS to the secure port out); it dies with the server (PR_SET_PDEATHSIG).
  * There is no config key for the default room version (dendrite_lite.events.room_versions:
    12). SyTest sends `room_version` itself in the createRoom calls of its helper when run with
    --room-version, so only rooms created by raw /createRoom calls get v12.
  * SyTest's mail server (smtp_host, smtp_port) goes into [email] as plain SMTP
    (smtp_tls = "none", no login), so registration offers [m.login.email.identity] beside
    [m.login.dummy] and the confirmation links go to SyTest. SyTest's mock CAS server
    (cas_server_url, a path of its HTTPS test server, trusted through SSL_CERT_FILE) becomes
    [cas] server_url. App-service registration files go into [appservices]
    registration_files. URL previews are on, allowed to reach 127.0.0.1 (SyTest's own test
    server).
  * SyTest's reCAPTCHA keys and its fake siteverify API go into [registration] with
    recaptcha_required = false: SyTest gives every server the keys, but its register helpers
    only know m.login.dummy, so the captcha flow is offered beside the plain one (Synapse
    likewise needs enable_registration_captcha, which SyTest never sets).
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys

c = json.load(open(os.environ["SYTEST_HS_CONFIG"]))
hs_dir, data = c["hs_dir"], c["data_dir"]
host = c["bind_host"]
secure, unsecure = int(c["secure_port"]), int(c["unsecure_port"])
tools = os.environ.get("TOOLS") or os.path.expanduser("~/.cache/mx-tools")
exe = os.environ.get("DENDRITE_LITE") or os.path.join(tools, "dl-venv", "bin", "dendrite-lite")
cfg_path = os.path.join(hs_dir, "dendrite-lite.toml")

log = open(c["log_file"], "ab", buffering=0)


def toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a TOML basic string


# 1. `dendrite-lite init` writes the commented config and the signing key (data_dir is fresh).
subprocess.run(
    [exe, "init", "--non-interactive", "--force", "--config", cfg_path,
     "--server-name", c["server_name"],
     "--public-baseurl", "https://%s:%d/" % (host, secure),
     "--data-dir", data,
     "--tls-mode", "files", "--tls-cert", c["tls_cert"], "--tls-key", c["tls_key"],
     "--registration", "open",
     "--listen-client", "%s:%d" % (host, secure),
     "--listen-federation", ""],
    check=True, cwd=hs_dir, stdout=log, stderr=log,
)

# 2. Set what init has no flag for, in place (TOML forbids a key twice in a table).
verify = os.environ.get("DL_FED_VERIFY", "1") != "0"
overrides = {
    "registration": {
        "shared_secret": c["registration_shared_secret"],
        "allow_guests": True,
        **({
            "recaptcha_public_key": c["recaptcha_public_key"],
            "recaptcha_private_key": c["recaptcha_private_key"],
            "recaptcha_siteverify_api": c["recaptcha_siteverify_api"],
            "recaptcha_required": False,
        } if c.get("recaptcha_public_key") else {}),
    },
    "federation": {
        "enabled": True,
        "verify_tls": verify,
        "ca_file": c["ca_cert"] if verify else "",
        "trusted_key_servers": [],  # no key notary reachable; fetch keys from origins
    },
    "push": {"ca_file": c["ca_cert"]},  # SyTest's push gateway has a cert from its CA
    # SyTest's test SMTP server (tests/04mail-server.pl): plain, no login, on its bind host.
    **({"email": {
        "smtp_host": c["smtp_host"], "smtp_port": int(c["smtp_port"]), "smtp_tls": "none",
    }} if c.get("smtp_host") else {}),
    # SyTest's identity server (tests/07id-server.pl) serves HTTPS on the loopback address with
    # a self-signed certificate for "localhost", which no CA vouches for: Synapse runs SyTest
    # with use_insecure_ssl_client_just_for_testing_do_not_use, this is ours.
    "identity_server": {"verify_tls": False, "ip_allowlist": ["127.0.0.1/32"]},
    # "Test URL preview" previews a page of SyTest's own HTTPS server on the loopback address
    # (it trusts SyTest's CA through SSL_CERT_FILE, below).
    "media": {"url_preview_enabled": True, "url_preview_ip_allowlist": ["127.0.0.1/32"]},
    "ratelimit": {"enabled": False},
    "logging": {"level": os.environ.get("DL_LOG_LEVEL", "info")},
    "database": {"synchronous": "NORMAL"},  # test data: no need to fsync every commit
    # SyTest's application services (tests/60app-services): the registration YAML files it
    # writes for the first homeserver. Their url is SyTest's HTTPS test server, trusted through
    # SSL_CERT_FILE (below) like URL previews.
    "appservices": {"registration_files": c.get("app_service_config_files") or []},
    # Single sign-on (tests/12login/02cas.pl, 10apidoc/13ui-auth.pl): SyTest answers /login
    # and /proxyValidate under this URL itself.
    **({"cas": {"server_url": c["cas_server_url"]}} if c.get("cas_server_url") else {}),
}
out, section, done = [], None, set()
for line in open(cfg_path).read().splitlines():
    m = re.match(r"^\[(\w+)\]\s*$", line)
    if m:
        section = m[1]
    m = re.match(r"^#?\s*(\w+)\s*=", line)
    if section in overrides and m and m[1] in overrides[section]:
        line = "%s = %s" % (m[1], toml(overrides[section][m[1]]))
        done.add((section, m[1]))
    out.append(line)
for sec, kv in overrides.items():
    missing = ["%s = %s" % (k, toml(v)) for k, v in kv.items() if (sec, k) not in done]
    if missing:
        if ("[%s]" % sec) in out:
            i = out.index("[%s]" % sec) + 1
            out[i:i] = missing
        else:
            out += ["", "[%s]" % sec] + missing
with open(cfg_path, "w") as f:
    f.write("\n".join(out) + "\n")
subprocess.run([exe, "config", "check", "--config", cfg_path], check=True, stdout=log, stderr=log)


# 3. Optional plain-http client API on the unsecure port: forward bytes to the TLS port.
def forwarder():
    import asyncio
    import ctypes
    import ssl

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != server_pid:
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the server
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(c["ca_cert"])

    async def pipe(r, w):
        try:
            while chunk := await r.read(65536):
                w.write(chunk)
                await w.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                w.close()
            except Exception:
                pass

    async def handle(cr, cw):
        try:
            sr, sw = await asyncio.open_connection(host, secure, ssl=ctx, server_hostname=host)
        except OSError:
            cw.close()
            return
        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))

    async def main():
        srv = await asyncio.start_server(handle, sock=lsock)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


lsock = None
if os.environ.get("DL_PLAIN_HTTP", "1") != "0":
    lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, unsecure))
    lsock.listen(128)
    server_pid = os.getpid()  # exec keeps it: the forwarder's parent is the server
    if os.fork() == 0:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            forwarder()
        finally:
            os._exit(0)
    lsock.close()

# 4. Exec the server (`run` checks the config, then execs its lean server process: same PID).
# URL previews, captcha checks and CAS ticket validation fetch with OpenSSL's default trust,
# which SSL_CERT_FILE replaces: SyTest's test server has a certificate from SyTest's CA.
# (Federation and push have their own ca_file.)
os.environ["SSL_CERT_FILE"] = c["ca_cert"]
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
os.execv(exe, [exe, "run", "--config", cfg_path])
