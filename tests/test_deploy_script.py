"""recipes/wasm/deploy-guest.sh, the deploy step of the sample CI workflow: it uploads a
guest with REPLACE as a least-privilege ACL user (docs/roles.md's deployer), on any port,
over TLS too, and succeeds only when RG.WASMLIST's hash is the artifact's sha256."""
import hashlib
import os
import subprocess

from conftest import GUESTS, ROOT, RedisServer, free_port, pairs

SCRIPT = os.path.join(ROOT, "recipes", "wasm", "deploy-guest.sh")
ARTIFACT = os.path.join(GUESTS, "all_keys.wasm")


def deployer_line():
    with open(os.path.join(ROOT, "docs", "roles.md")) as f:
        return next(line.split() for line in f.read().splitlines()
                    if line.startswith("ACL SETUSER gears-deployer "))


def deploy(port, **env):
    base = {"GUEST_NAME": "keys", "ARTIFACT": ARTIFACT, "REDIS_PORT": str(port),
            "REDIS_USER": "gears-deployer", "REDISCLI_AUTH": "deployer-pass"}
    return subprocess.run(["sh", SCRIPT], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **base, **env})


def listed_hash(c, name):
    return next(pairs(g)["hash"] for g in c.execute_command("RG.WASMLIST")
                if pairs(g)["name"] == name)


def test_deploys_and_verifies_as_the_deployer(fresh_server):
    s = fresh_server()
    c = s.client()
    assert c.execute_command(*deployer_line()) == "OK"
    done = deploy(s.port)
    assert done.returncode == 0, done.stdout + done.stderr
    sha = hashlib.sha256(open(ARTIFACT, "rb").read()).hexdigest()
    assert f"verified: keys runs {ARTIFACT} (sha256 {sha})" in done.stdout
    assert listed_hash(c, "keys") == sha
    # Again: REPLACE swaps it in place.
    assert deploy(s.port).returncode == 0


def test_a_refused_upload_fails_the_deploy(fresh_server):
    s = fresh_server()
    c = s.client()
    assert c.execute_command(*deployer_line()) == "OK"
    wrong = deploy(s.port, REDISCLI_AUTH="not-the-password")
    assert wrong.returncode != 0, wrong.stdout
    c.execute_command("ACL", "SETUSER", "reader", "on", ">r", "-@all", "+rg.wasmlist")
    no_perm = deploy(s.port, REDIS_USER="reader", REDISCLI_AUTH="r")
    assert no_perm.returncode != 0 and "NOPERM" in no_perm.stdout, no_perm.stdout
    missing = deploy(s.port, ARTIFACT="/nonexistent.wasm")
    assert missing.returncode != 0 and "no such file" in missing.stderr
    assert c.execute_command("RG.WASMLIST") == []


def test_deploys_over_tls(tmp_path):
    ca_key, ca, key, csr, cert = (tmp_path / n for n in
                                  ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    openssl = [
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=test-ca", "-keyout", ca_key, "-out", ca],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", key, "-out", csr],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-days", "1", "-out", cert,
         "-extfile", "/dev/stdin"],
    ]
    for cmd in openssl:
        subprocess.run(cmd, check=True, capture_output=True, input=b"subjectAltName=IP:127.0.0.1\n",
                       timeout=60)
    tls_port = free_port()
    s = RedisServer(extra_args=["--tls-port", tls_port, "--tls-cert-file", cert,
                                "--tls-key-file", key, "--tls-ca-cert-file", ca,
                                "--tls-auth-clients", "no"]).start()
    try:
        c = s.client()
        assert c.execute_command(*deployer_line()) == "OK"
        plain = deploy(tls_port)  # a plain connection to the TLS port does not deploy
        assert plain.returncode != 0
        done = deploy(tls_port, REDIS_TLS="1", REDIS_CACERT=str(ca))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "verified" in done.stdout
        assert listed_hash(c, "keys") == hashlib.sha256(open(ARTIFACT, "rb").read()).hexdigest()
    finally:
        s.stop()
