//! `./dev demo`: start the local stack, put a sample tree on the SFTP side, then run the sample
//! messages in `events/` through the local runner exactly as a user would, and print results.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use harness::stack::{pattern, write_file, Stack};

const SAMPLE_TREE: &str = "/tmp/backup-worker-demo";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = harness::repo_root();
    let runner = std::env::current_exe()?
        .parent()
        .map(|d| d.join("backup-worker"))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            anyhow::anyhow!("backup-worker is not built: run `cargo build -p backup-local`")
        })?;

    println!("== starting sshd, Azurite and the Azure Files test server on loopback");
    let stack = Stack::start();
    stack.azurite.create_container("backups").await;
    stack.files.create_share("backups");
    println!(
        "   sshd 127.0.0.1:{}  azurite {}  azure files {}",
        stack.sshd.port,
        stack.azurite.endpoint(),
        stack.files.endpoint()
    );

    println!("== sample tree in {SAMPLE_TREE}");
    let tree = Path::new(SAMPLE_TREE);
    let _ = fs::remove_dir_all(tree);
    fs::create_dir_all(tree)?;
    fs::set_permissions(tree, fs::Permissions::from_mode(0o755))?;
    write_file(tree, "README.txt", b"Quarterly reports and scans.\n");
    write_file(tree, "reports/2026/q3 summary.pdf", &pattern(300_000, 1));
    write_file(
        tree,
        "reports/2026/ledger-2026.xlsx",
        &pattern(3_500_000, 2),
    );
    write_file(tree, "scans/café menu.png", &pattern(80_000, 3));
    write_file(tree, "scans/empty.txt", b"");
    write_file(
        tree,
        "scratch/build.tmp",
        b"excluded by the message's exclude glob",
    );

    let run = |message: &str| -> anyhow::Result<()> {
        println!("\n== backup-worker run {message}");
        let status = Command::new(&runner)
            .args(["run", message])
            .current_dir(&root)
            .envs(stack.vars())
            .env("RUST_LOG", "warn")
            .status()?;
        println!("   (exit code {})", status.code().unwrap_or(-1));
        Ok(())
    };
    run("events/test-connection.json")?;
    run("events/backup.json")?;
    println!("\n== the same job again: unchanged files are skipped");
    run("events/backup.json")?;

    println!("\n== blobs in container `backups`");
    for name in stack.azurite.list("backups").await {
        println!("   {name}");
    }

    println!("\n== the same tree into an Azure Files share");
    run("events/backup-to-files.json")?;
    println!("\n== files in share `backups`");
    let mut files = stack.files.files("backups");
    files.sort();
    for (name, data) in files {
        println!("   {name} ({} bytes)", data.len());
    }
    Ok(())
}
