"""Black-box tests of RG.WASMUPLOAD / RG.WASMLIST / RG.WASMDELETE and of bad input.

SPEC.md "Wasm guests" and the RG.WASM* rows of "Commands": a guest is compiled and
described at upload; garbage, a core module, a component of another world or another
contract version are refused with a clear error and leave nothing behind.
"""
import hashlib

import pytest
import redis

from conftest import guest_bytes, pairs, upload, dump_regs, wasmrun_ok


def guests(c, *args):
    return {pairs(g)["name"]: pairs(g) for g in c.execute_command("RG.WASMLIST", *args)}


def test_upload_list_and_delete(r):
    assert upload(r, "genres", None, "DESCRIPTION", "recipe 2") == "OK"
    assert upload(r, "all_keys") == "OK"
    listed = guests(r)
    assert set(listed) == {"genres", "all_keys"}
    g = listed["genres"]
    wasm = guest_bytes("genres")
    assert g["size"] == len(wasm)
    assert g["hash"] == hashlib.sha256(wasm).hexdigest()
    assert g["description"] == "recipe 2"
    assert g["contract"].startswith("1.")
    assert g["jobs"] == ["count"] and g["registrations"] == []
    a = listed["all_keys"]
    assert a["description"] is None and a["jobs"] == []
    assert len(a["registrations"]) == 1
    assert set(a["registrations"]) == set(dump_regs(r))
    assert "code" not in g

    raw = r.connection_pool.connection_kwargs
    bin_client = redis.Redis(port=raw["port"])
    with_code = {pairs(x)[b"name"]: pairs(x) for x in bin_client.execute_command("RG.WASMLIST", "WITHCODE")}
    assert with_code[b"genres"][b"code"] == wasm

    assert r.execute_command("RG.WASMDELETE", "all_keys") == "OK"
    assert set(guests(r)) == {"genres"}
    assert dump_regs(r) == {}
    r.set("k", 1)
    assert r.exists("all_keys") == 0


def test_a_guests_registrations_carry_its_name_and_description(r):
    r.execute_command("ACL", "SETUSER", "deployer", "on", "nopass", "+@all", "~*", "&*")
    deployer = redis.Redis(port=r.connection_pool.connection_kwargs["port"],
                           username="deployer", password="x", decode_responses=True)
    assert upload(deployer, "all_keys", None, "DESCRIPTION", "every key, in a set") == "OK"
    (reg,) = dump_regs(r).values()
    assert (reg["owner"], reg["ownerDescription"], reg["user"]) == (
        "guest:all_keys", "every key, in a set", "deployer")
    # Replaced without a description, the registrations say so.
    assert upload(deployer, "all_keys", None, "REPLACE") == "OK"
    (reg,) = dump_regs(r).values()
    assert (reg["owner"], reg["ownerDescription"]) == ("guest:all_keys", None)


def test_upload_twice_needs_replace(r):
    upload(r, "genres")
    with pytest.raises(redis.ResponseError, match="already exists"):
        upload(r, "genres")
    assert upload(r, "genres", None, "REPLACE") == "OK"
    assert set(guests(r)) == {"genres"}


def test_one_component_under_two_names(r):
    upload(r, "g1", "genres")
    upload(r, "g2", "genres")
    r.hset("movie:1", "genres", "Drama")
    assert wasmrun_ok(r, "g1", "count", "movie:*") == wasmrun_ok(r, "g2", "count", "movie:*")


@pytest.mark.parametrize("args, message", [
    (["RG.WASMUPLOAD"], "wrong number of arguments"),
    (["RG.WASMUPLOAD", "x"], "wrong number of arguments"),
    (["RG.WASMUPLOAD", "x", "BOGUS", b"\0asm"], "Unknown arguments were given: BOGUS"),
    (["RG.WASMUPLOAD", "x", "DESCRIPTION", b"\0asm"], "DESCRIPTION needs a value"),
    (["RG.WASMRUN", "nope", "job"], "guest 'nope' does not exist"),
    (["RG.WASMRUN", "nope"], "wrong number of arguments"),
    (["RG.WASMDELETE", "nope"], "guest 'nope' does not exist"),
    (["RG.WASMDELETE"], "wrong number of arguments"),
    (["RG.WASMLIST", "BOGUS"], "Unknown arguments were given: BOGUS"),
])
def test_bad_arguments(r, args, message):
    with pytest.raises(redis.ResponseError, match=message):
        r.execute_command(*args)


def test_unknown_job(r):
    upload(r, "genres")
    with pytest.raises(redis.ResponseError, match="has no job 'nope'"):
        r.execute_command("RG.WASMRUN", "genres", "nope")


# a valid core module: (module) in binary form
CORE_MODULE = b"\0asm\x01\x00\x00\x00"


@pytest.mark.parametrize("payload, message", [
    (b"", "not a WebAssembly component"),
    (b"garbage bytes, not wasm at all", "not a WebAssembly component"),
    (b"\0asm\x0d\x00\x01\x00\xff\xff\xff", "does not compile"),
    (CORE_MODULE, "core WebAssembly module, not a component"),
])
def test_bad_bytes_refused(r, payload, message):
    upload(r, "genres")
    with pytest.raises(redis.ResponseError, match=message):
        r.execute_command("RG.WASMUPLOAD", "bad", payload)
    with pytest.raises(redis.ResponseError, match=message):
        r.execute_command("RG.WASMUPLOAD", "genres", "REPLACE", payload)
    assert set(guests(r)) == {"genres"}
    assert r.ping()
    r.hset("movie:1", "genres", "Drama")
    assert wasmrun_ok(r, "genres", "count", "movie:*")


def test_component_of_another_world_refused(r):
    with pytest.raises(redis.ResponseError, match="does not export redisgears:guest/plans"):
        upload(r, "x", "not_a_guest")
    assert guests(r) == {}


def test_component_of_another_contract_version_refused(r):
    with pytest.raises(redis.ResponseError) as e:
        upload(r, "x", "faults_v2")
    assert "2.0.0" in str(e.value) and "1.0.0" in str(e.value), str(e.value)
    assert guests(r) == {}
