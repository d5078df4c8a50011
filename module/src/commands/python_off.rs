//! The Python commands of a build without the Python host (no `python` feature): each
//! answers what a server loaded with PythonEnabled 0 answers, and says why.

use redis_module::{Context, RedisString};

use super::Answer;

macro_rules! no_python {
    ($($name:ident),* $(,)?) => {$(
        pub fn $name(_ctx: &Context, _args: &[RedisString]) -> Result<Answer, String> {
            Err("ERR Python is disabled on this server (PythonEnabled 0; this build of \
                 the module has no Python)"
                .into())
        }
    )*};
}

no_python!(
    pyexecute,
    pystats,
    pydumpsessions,
    pyprofile,
    inner_register,
    pydumpreqs,
    pyexportreq,
    pyimportreq,
);
