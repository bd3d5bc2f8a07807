//! Microsoft's Python SDK (azure-storage-file-share, pinned in `./dev install`) against the
//! test server: everything it does must work, and what must fail must fail the way it expects.

use std::path::PathBuf;
use std::process::Command;

use files_server::FilesServer;
use serde_json::{json, Value};

fn tools() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin")
}

#[test]
fn the_python_sdk_agrees_with_the_server() {
    let python = tools().join("python");
    assert!(
        python.exists(),
        "{} is missing: run `./dev install`",
        python.display()
    );
    let server = FilesServer::start().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python_sdk.py");
    let out = Command::new(python)
        .arg(script)
        .args([server.endpoint().as_str(), server.account(), server.key()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(seen["create_twice"], "ShareAlreadyExists");
    assert_eq!(seen["orphan_dir"], "ParentNotFound");
    assert_eq!(
        seen["listing"],
        json!([
            "docs/",
            "docs/a.txt:19",
            "docs/naïve café & co.txt:11",
            "docs/sub/",
            "docs/sub/big.bin:9437191",
            "empty.txt:0"
        ])
    );
    for (path, ok) in seen["downloads_match"].as_object().unwrap() {
        assert_eq!(ok, true, "{path} came back different");
    }
    assert_eq!(seen["ranged_read_matches"], true);
    // List Ranges: the three Put Range calls merge into one written range; a sparse file
    // reports only what was written.
    assert_eq!(seen["ranges"], json!([[0, 9437190]]));
    assert_eq!(seen["sparse_ranges"], json!([[4194304, 4195327]]));
    assert_eq!(seen["properties"], json!({"size": 19, "md5_matches": true}));
    assert_eq!(seen["renamed_content"], "hello from the SDK\n");
    assert_eq!(seen["old_name_after_rename"], "ResourceNotFound");
    assert_eq!(seen["delete_twice"], "ResourceNotFound");
    assert_eq!(seen["wrong_key"], json!([403, "AuthenticationFailed"]));
    assert_eq!(seen["sas_read"], "hello from the SDK\n");
    assert_eq!(
        seen["sas_write"],
        json!([403, "AuthorizationPermissionMismatch"])
    );
    assert_eq!(seen["sas_expired"], json!([403, "AuthenticationFailed"]));
    assert_eq!(seen["missing_share"], "ShareNotFound");

    // What the SDK wrote is what the server holds.
    let mut names: Vec<String> = server.files("sdk").into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "docs/naïve café & co.txt",
            "docs/sub/big.bin",
            "docs/sub/renamed.txt"
        ]
    );
}
