"""A guest as a project of its own: `make new-guest` makes a crate outside this workspace
from templates/guest; its own `cargo test` runs the guest's job without Redis
(gears::testing, execute() answered by an in-memory keyspace); built for wasm32-wasip2 it
uploads and runs on a real server, and RG.WASMLIST's hash is the artifact's sha256.

The crate builds in target/new-guest (kept between runs), offline: its Cargo.lock is this
repository's, whose crates `make build` has fetched already."""
import hashlib
import os
import subprocess

from conftest import ROOT, RedisServer

TARGET = os.path.join(ROOT, "target", "new-guest")


def run(cmd, cwd, **env):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, CARGO_TARGET_DIR=TARGET, **env))
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_a_guest_from_the_template_is_tested_built_uploaded_and_run(tmp_path):
    out = run(["make", "-s", "new-guest", "NAME=lengths-guest", f"DIR={tmp_path}"], ROOT)
    crate = tmp_path / "lengths-guest"
    assert f"created {crate}" in out
    assert (crate / "Cargo.lock").is_file() and "[workspace]" in (crate / "Cargo.toml").read_text()

    tested = run(["cargo", "test", "--offline"], crate)
    assert "test result: ok. 2 passed" in tested, tested[-2000:]

    run(["cargo", "build", "--offline", "--release", "--target", "wasm32-wasip2"], crate)
    artifact = os.path.join(TARGET, "wasm32-wasip2", "release", "lengths_guest.wasm")
    with open(artifact, "rb") as f:
        component = f.read()

    s = RedisServer().start()
    try:
        c = s.client()
        assert c.execute_command("RG.WASMUPLOAD", "lengths-guest", component) == "OK"
        listed = dict(zip(*[iter(c.execute_command("RG.WASMLIST")[0])] * 2))
        assert listed["hash"] == hashlib.sha256(component).hexdigest()
        c.set("user:1", "ada")
        c.set("user:2", "grace")
        c.set("other", "x")
        results, errors = c.execute_command("RG.WASMRUN", "lengths-guest", "lengths", "user:*")
        assert errors == []
        assert sorted(results) == [["user:1", 3], ["user:2", 5]]
    finally:
        s.stop()


def test_new_guest_refuses_a_bad_name_and_an_existing_directory(tmp_path):
    bad = subprocess.run(["make", "-s", "new-guest", "NAME=Bad Name", f"DIR={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "NAME:" in bad.stderr
    (tmp_path / "taken").mkdir()
    taken = subprocess.run(["make", "-s", "new-guest", "NAME=taken", f"DIR={tmp_path}"],
                           cwd=ROOT, capture_output=True, text=True)
    assert taken.returncode != 0 and "exists already" in taken.stderr
