//! The two tools compared, given the same files, chunk size and requests in flight: our local
//! runner (what every entry point runs) and rclone 1.75 (`copy`, otherwise its defaults).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use harness::sshd::{Sshd, TEST_USER};

use super::link::Link;
use super::measure::{measure, Measure};
use super::sinks::Sink;

pub const CHUNK: &str = "4MiB";
pub const CONCURRENCY: usize = 16;

#[derive(Clone, Copy, PartialEq)]
pub enum Tool {
    Ours,
    /// Ours with chunks checked by MD5 instead of CRC-64 (`CHUNK_CHECKSUM=md5`): shows what
    /// Azurite's JavaScript CRC-64 costs the machine.
    OursMd5,
    Rclone,
}

impl Tool {
    pub fn title(self) -> &'static str {
        match self {
            Tool::Ours => "backup-worker",
            Tool::OursMd5 => "backup-worker, `CHUNK_CHECKSUM=md5`",
            Tool::Rclone => "rclone 1.75",
        }
    }
}

/// The SFTP server both tools read, and how they reach it.
pub struct Source<'a> {
    pub sshd: &'a Sshd,
    pub link: &'a Link,
}

pub struct Tools {
    pub runner: PathBuf,
    pub rclone: PathBuf,
}

impl Tools {
    /// Which build of the worker runs, for the table's heading.
    pub fn runner_build(&self) -> String {
        match self.runner.parent().and_then(|d| d.file_name()) {
            Some(dir) if dir == "dist" => "as it ships (profile `dist`)".into(),
            Some(dir) if dir == "release" => "release build".into(),
            _ => format!("`{}`", self.runner.display()),
        }
    }

    pub fn run(&self, tool: Tool, at: &Source, src: &Path, sink: &Sink) -> Measure {
        match tool {
            Tool::Ours => self.ours(at, src, sink, None),
            Tool::OursMd5 => self.ours(at, src, sink, Some("md5")),
            Tool::Rclone => self.rclone(at, src, sink),
        }
    }

    fn ours(&self, at: &Source, src: &Path, sink: &Sink, checksum: Option<&str>) -> Measure {
        let (storage, mut sink_vars) = sink.profile();
        if let Some(c) = checksum {
            let var = format!("BACKUP_STORAGE_{}_CHUNK_CHECKSUM", storage.to_uppercase());
            sink_vars.insert(var, c.into());
        }
        let message = format!(
            r#"{{"kind": "backup", "job_id": "bench", "source": {{"storage": "office_nas", "path": "{}"}},
                "destination": {{"storage": "{storage}", {place}}},
                "options": {{"chunk_size": "{CHUNK}", "upload_concurrency": {CONCURRENCY}}}}}"#,
            src.display(),
            place = sink.place(),
        );
        let mut vars: HashMap<String, String> = harness::stack::source_vars(at.sshd);
        if at.link.proxied() {
            harness::fault::route_sftp(&mut vars, at.link.sftp_port());
        }
        vars.extend(sink_vars);
        // Its `resources` line (info) tells the peak of chunk memory held.
        let log = [("RUST_LOG", "warn,backup_worker=info")];
        let child = harness::runner::spawn_with_vars(&self.runner, vars, &message, &log);
        let m = measure(child, "backup-worker");
        let result: serde_json::Value = serde_json::from_str(&m.stdout).unwrap_or_default();
        assert_eq!(
            result["status"], "succeeded",
            "backup-worker's job did not succeed: {}",
            m.stdout
        );
        m
    }

    fn rclone(&self, at: &Source, src: &Path, sink: &Sink) -> Measure {
        let (remote, sink_env) = sink.rclone_remote();
        let child = Command::new(&self.rclone)
            .args(["copy", &format!("nas:{}", src.display()), &remote])
            .args(["--config", "/dev/null", "--sftp-known-hosts-file", ""])
            .args(sink.rclone_flags("4Mi", CONCURRENCY))
            .env("RCLONE_CONFIG_NAS_TYPE", "sftp")
            .env("RCLONE_CONFIG_NAS_HOST", "127.0.0.1")
            .env("RCLONE_CONFIG_NAS_PORT", at.link.sftp_port().to_string())
            .env("RCLONE_CONFIG_NAS_USER", TEST_USER)
            .env("RCLONE_CONFIG_NAS_KEY_FILE", at.sshd.client_key())
            .env("RCLONE_CONFIG_NAS_SHELL_TYPE", "unix")
            .envs(sink_env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rclone");
        measure(child, "rclone")
    }
}

/// The most chunk memory our runner held at once, from its `resources` log line (JSON).
pub fn chunk_memory_peak(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains("chunk_memory_peak"))?;
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value["chunk_memory_peak"].as_u64()
}
