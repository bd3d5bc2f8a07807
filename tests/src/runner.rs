//! Driving the local runner binary the way a user does: a message on stdin, storage profiles
//! in the environment.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::stack::Stack;

/// Start `bin run -` with the stack's profiles and `message` on stdin; stdout and stderr are piped.
pub fn spawn(bin: &Path, stack: &Stack, message: &str, env: &[(&str, &str)]) -> Child {
    spawn_with_vars(bin, stack.vars(), message, env)
}

/// Start `bin run -` with these profile variables (and `env` over them).
pub fn spawn_with_vars(
    bin: &Path,
    vars: HashMap<String, String>,
    message: &str,
    env: &[(&str, &str)],
) -> Child {
    let mut child = Command::new(bin)
        .args(["run", "-"])
        .envs(vars)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(message.as_bytes())
        .expect("write the message");
    child
}

/// Run to completion and collect the output.
pub fn run(bin: &Path, stack: &Stack, message: &str, env: &[(&str, &str)]) -> Output {
    run_with_vars(bin, stack.vars(), message, env)
}

pub fn run_with_vars(
    bin: &Path,
    vars: HashMap<String, String>,
    message: &str,
    env: &[(&str, &str)],
) -> Output {
    spawn_with_vars(bin, vars, message, env)
        .wait_with_output()
        .expect("wait for the runner")
}
