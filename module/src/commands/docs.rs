//! COMMAND DOCS of the RG.* commands: a summary and the arguments of each, as Redis's own
//! commands have them (`COMMAND DOCS RG.PYEXECUTE`, redis-cli's hints and help).
//!
//! Set once at load with RedisModule_SetCommandInfo (Redis 7.0+, Valkey), which copies
//! what it is given. Arity is left to the commands themselves (0: not declared), so a
//! wrong number of arguments keeps getting the command's own error. Internal commands
//! (what replicas, the AOF and peers send) say so in their summary.

use std::ffi::{c_char, c_int, CString};
use std::ptr;

use redis_module::{raw, Context};

/// One argument as COMMAND DOCS shows it.
#[derive(Clone)]
struct Arg {
    name: &'static str,
    kind: Kind,
    token: Option<&'static str>,
    optional: bool,
    multiple: bool,
}

#[derive(Clone)]
enum Kind {
    Text,
    /// A keyword alone (`token` is it).
    Pure,
    OneOf(Vec<Arg>),
    Block(Vec<Arg>),
}

fn arg(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
        multiple: false,
    }
}

fn text(name: &'static str) -> Arg {
    arg(name, Kind::Text)
}

/// An optional keyword alone, e.g. `[UNBLOCKING]`.
fn flag(token: &'static str) -> Arg {
    Arg {
        token: Some(token),
        optional: true,
        ..arg(token, Kind::Pure)
    }
}

impl Arg {
    fn opt(self) -> Arg {
        Arg {
            optional: true,
            ..self
        }
    }
    fn many(self) -> Arg {
        Arg {
            multiple: true,
            ..self
        }
    }
    /// Preceded by a keyword, e.g. `DESCRIPTION description`.
    fn after(self, token: &'static str) -> Arg {
        Arg {
            token: Some(token),
            ..self
        }
    }
}

struct Doc {
    command: &'static str,
    summary: &'static str,
    complexity: &'static str,
    args: Vec<Arg>,
}

fn doc(command: &'static str, summary: &'static str, args: Vec<Arg>) -> Doc {
    Doc {
        command,
        summary,
        complexity: "",
        args,
    }
}

const INTERNAL: &str = "O(1) for the command; its work depends on what it carries";

fn docs() -> Vec<Doc> {
    let id = || text("id");
    vec![
        Doc {
            complexity: "Depends on the script and the job it runs",
            ..doc(
                "rg.pyexecute",
                "Runs a Python script: a job (run()) whose results it answers, or registrations (register()) bound to events",
                vec![
                    text("code"),
                    flag("UNBLOCKING"),
                    text("id").after("ID").opt(),
                    text("description").after("DESCRIPTION").opt(),
                    flag("UPGRADE"),
                    text("session-id").after("REPLACE_WITH").opt(),
                    text("requirement").after("REQUIREMENTS").opt().many(),
                ],
            )
        },
        doc("rg.pystats", "Memory figures of the Python interpreter", vec![]),
        doc(
            "rg.pydumpsessions",
            "The Python sessions, with their registrations and requirements",
            vec![
                flag("TS"),
                flag("VERBOSE"),
                text("session-id").after("SESSIONS").opt().many(),
            ],
        ),
        doc("rg.pydumpreqs", "The installed Python requirements", vec![]),
        doc(
            "rg.pyprofile",
            "The cProfile statistics of a Python session (ProfileExecutions), or resets them",
            vec![arg(
                "subcommand",
                Kind::OneOf(vec![
                    arg(
                        "stats",
                        Kind::Block(vec![
                            arg("STATS", Kind::Pure).after("STATS"),
                            text("session-id"),
                            text("order-by").opt(),
                        ]),
                    ),
                    arg(
                        "reset",
                        Kind::Block(vec![
                            arg("RESET", Kind::Pure).after("RESET"),
                            text("session-id"),
                        ]),
                    ),
                ]),
            )],
        ),
        doc(
            "rg.pyexportreq",
            "An installed Python requirement as bulk strings, for RG.PYIMPORTREQ elsewhere",
            vec![text("name")],
        ),
        doc(
            "rg.pyimportreq",
            "Installs a Python requirement exported by RG.PYEXPORTREQ, without a package index",
            vec![text("chunk").many()],
        ),
        doc(
            "rg.getexecution",
            "An execution's plan, status, steps and their durations",
            vec![
                id(),
                arg(
                    "scope",
                    Kind::OneOf(vec![flag("SHARD"), flag("CLUSTER")]),
                )
                .opt(),
            ],
        ),
        doc(
            "rg.getresults",
            "A finished execution's results and errors",
            vec![id()],
        ),
        doc(
            "rg.getresultsblocking",
            "Blocks until an execution ends, then answers its results and errors",
            vec![id()],
        ),
        doc(
            "rg.dropexecution",
            "Forgets a finished execution and its results",
            vec![id()],
        ),
        doc(
            "rg.abortexecution",
            "Stops a running execution (it ends aborted)",
            vec![id()],
        ),
        doc(
            "rg.dumpexecutions",
            "Every execution kept: id, status, whether a registration started it",
            vec![],
        ),
        doc(
            "rg.configget",
            "Module settings (and user settings saved by RG.CONFIGSET)",
            vec![text("name").many()],
        ),
        doc(
            "rg.configset",
            "Sets module settings; an unknown name is kept as a user setting",
            vec![arg("setting", Kind::Block(vec![text("name"), text("value")])).many()],
        ),
        doc(
            "rg.dumpregistrations",
            "Every registration with its reader, mode, arguments and statistics",
            vec![flag("CLUSTER")],
        ),
        doc(
            "rg.unregister",
            "Removes a registration (on every master of a cluster)",
            vec![id(), flag("abortpending")],
        ),
        doc(
            "rg.innerregister",
            "Internal: re-creates a Python session from the replication stream or the AOF",
            vec![text("argument").many()],
        ),
        doc(
            "rg.trigger",
            "Runs the CommandReader registration named trigger with these arguments",
            vec![text("trigger"), text("argument").opt().many()],
        ),
        doc(
            "rg.innerhook",
            "Internal: what a command hooked by a registration becomes",
            vec![text("argument").opt().many()],
        ),
        doc(
            "rg.triggeronkey",
            "As RG.TRIGGER, with a key a cluster client routes the call by",
            vec![text("trigger"), text("key"), text("argument").opt().many()],
        ),
        doc(
            "rg.clearregistrationsstats",
            "Resets every registration's statistics",
            vec![],
        ),
        doc(
            "rg.pauseregistrations",
            "Pauses stream registrations",
            vec![text("id").many()],
        ),
        doc(
            "rg.unpauseregistrations",
            "Resumes paused stream registrations",
            vec![text("id").many()],
        ),
        Doc {
            complexity: "Compiles the component: proportional to its size",
            ..doc(
                "rg.wasmupload",
                "Uploads a WebAssembly guest: compiles it and creates its registrations",
                vec![
                    text("name"),
                    flag("REPLACE"),
                    text("description").after("DESCRIPTION").opt(),
                    text("component"),
                ],
            )
        },
        doc(
            "rg.innerwasm",
            "Internal: re-creates a guest from the replication stream or the AOF",
            vec![text("argument").many()],
        ),
        Doc {
            complexity: "Depends on the job",
            ..doc(
                "rg.wasmrun",
                "Runs a batch job a guest describes",
                vec![
                    text("name"),
                    text("job"),
                    flag("UNBLOCKING"),
                    text("argument").opt().many(),
                ],
            )
        },
        doc(
            "rg.wasmlist",
            "The guests: name, size, sha256, description, jobs, registrations",
            vec![flag("WITHCODE")],
        ),
        doc(
            "rg.wasmdelete",
            "Deletes a guest and its registrations",
            vec![text("name")],
        ),
        doc(
            "rg.dumpcode",
            "Every Python session and guest with its registrations' ids and owner, as one payload",
            vec![],
        ),
        Doc {
            complexity: "Re-runs every session's script and compiles every guest of the payload",
            ..doc(
                "rg.restorecode",
                "Restores the sessions and guests of an RG.DUMPCODE payload, all or none",
                vec![
                    text("payload"),
                    arg(
                        "policy",
                        Kind::OneOf(vec![flag("APPEND"), flag("REPLACE"), flag("FLUSH")]),
                    )
                    .opt(),
                ],
            )
        },
        doc(
            "rg.flushcode",
            "Removes every registration, Python session and guest",
            vec![],
        ),
        doc(
            "rg.infocluster",
            "This shard and every master of the cluster",
            vec![],
        ),
        doc(
            "rg.refreshcluster",
            "Reads the cluster's layout again",
            vec![],
        ),
        Doc {
            complexity: INTERNAL,
            ..doc(
                "rg.hello",
                "Internal: a peer's greeting on the cluster link",
                vec![text("peer").opt()],
            )
        },
        Doc {
            complexity: INTERNAL,
            ..doc(
                "rg.innermsg",
                "Internal: one frame from a peer on the cluster link",
                vec![text("frame").many()],
            )
        },
    ]
}

/// The C strings and argument arrays of one command's info, alive until it is set.
#[derive(Default)]
struct Arena {
    strings: Vec<CString>,
    arrays: Vec<Vec<raw::RedisModuleCommandArg>>,
}

impl Arena {
    fn c(&mut self, s: &str) -> Result<*const c_char, String> {
        let s = CString::new(s).map_err(|e| e.to_string())?;
        let p = s.as_ptr();
        // The CString's heap buffer does not move when the CString does.
        self.strings.push(s);
        Ok(p)
    }

    fn c_or_null(&mut self, s: &str) -> Result<*const c_char, String> {
        if s.is_empty() {
            Ok(ptr::null())
        } else {
            self.c(s)
        }
    }

    /// A NULL-terminated array of `args` (NULL itself when there are none).
    fn args(&mut self, args: &[Arg]) -> Result<*mut raw::RedisModuleCommandArg, String> {
        if args.is_empty() {
            return Ok(ptr::null_mut());
        }
        let mut array = Vec::with_capacity(args.len() + 1);
        for a in args {
            let (type_, subargs) = match &a.kind {
                Kind::Text => (
                    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
                    ptr::null_mut(),
                ),
                Kind::Pure => (
                    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
                    ptr::null_mut(),
                ),
                Kind::OneOf(sub) => (
                    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_ONEOF,
                    self.args(sub)?,
                ),
                Kind::Block(sub) => (
                    raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK,
                    self.args(sub)?,
                ),
            };
            let mut flags = raw::REDISMODULE_CMD_ARG_NONE;
            if a.optional {
                flags |= raw::REDISMODULE_CMD_ARG_OPTIONAL;
            }
            if a.multiple {
                flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE;
            }
            array.push(raw::RedisModuleCommandArg {
                name: self.c(&a.name.to_ascii_lowercase())?,
                type_,
                key_spec_index: -1,
                token: match a.token {
                    Some(t) => self.c(t)?,
                    None => ptr::null(),
                },
                summary: ptr::null(),
                since: ptr::null(),
                flags: flags as c_int,
                deprecated_since: ptr::null(),
                subargs,
                display_text: ptr::null(),
            });
        }
        // SAFETY: RedisModuleCommandArg is a C struct of pointers and integers, for which
        // all zeroes is valid: the array's terminator (a NULL name).
        array.push(unsafe { std::mem::zeroed() });
        let p = array.as_mut_ptr();
        // The Vec's heap buffer does not move when the Vec does.
        self.arrays.push(array);
        Ok(p)
    }
}

/// Sets every RG.* command's docs (during load, after the commands were created). False
/// when the server has no RedisModule_SetCommandInfo.
pub fn apply(ctx: &Context) -> Result<bool, String> {
    // SAFETY: the API table (redis/mod.rs): filled by RedisModule_Init before this runs at
    // load, only read; both are optional on older servers, hence matched.
    let (get, set) = unsafe { (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandInfo) };
    let (Some(get), Some(set)) = (get, set) else {
        return Ok(false);
    };
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    for d in docs() {
        let mut arena = Arena::default();
        let name = CString::new(d.command).map_err(|e| e.to_string())?;
        let info = raw::RedisModuleCommandInfo {
            version: &version,
            summary: arena.c(d.summary)?,
            complexity: arena.c_or_null(d.complexity)?,
            since: arena.c(super::info::VERSION)?,
            history: ptr::null_mut(),
            tips: ptr::null(),
            arity: 0,
            key_specs: ptr::null_mut(),
            args: arena.args(&d.args)?,
        };
        // SAFETY: `ctx` is the load context on the main thread during OnLoad (the
        // `Context` convention, redis/mod.rs). GetCommand returns NULL for a command this
        // module did not create (checked), else a handle Redis keeps for the module's
        // life. `info`, `version` and everything they point to (the arena's strings and
        // NULL-terminated argument arrays) live until after the call; Redis copies them.
        let status = unsafe {
            let cmd = get(ctx.ctx, name.as_ptr());
            if cmd.is_null() {
                return Err(format!("command {} not found", d.command));
            }
            set(cmd, &info)
        };
        if status != raw::REDISMODULE_OK as i32 {
            return Err(format!("the server refused the docs of {}", d.command));
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_docs_once() {
        let docs = docs();
        let mut names: Vec<_> = docs.iter().map(|d| d.command).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a command documented twice");
        for (command, _) in super::super::categories::CATEGORIES {
            assert!(names.contains(command), "{command} has no docs");
        }
    }
}
