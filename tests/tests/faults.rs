//! The SFTP link misbehaves (through `harness::fault::FaultProxy` in front of sshd): cut
//! connections are replaced and reads continue at the offset they reached, so a link that drops
//! every few MiB still gets a large file through, one cut does not fail the rest of the job,
//! and a stalled read times out instead of blocking.

use std::path::Path;
use std::time::{Duration, Instant};

use backup_common::result::JobStatus;
use harness::fault::{through, FaultProxy, Policy};
use harness::stack::{pattern, write_file, Stack};
use md5::Digest;

const MIB: u64 = 1024 * 1024;

fn backup(src: &Path, dest: &str) -> String {
    format!(
        r#"{{"kind": "backup", "job_id": "faults",
            "source": {{"storage": "office_nas", "path": "{}"}},
            "destination": {dest}, "options": {{"chunk_size": "1MiB", "upload_concurrency": 4}}}}"#,
        src.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_that_drops_every_few_mib_still_gets_a_large_file_through() {
    let stack = Stack::start();
    stack.azurite.create_container("flaky").await;
    stack.files.create_share("flaky");
    let src = stack.source_dir("flaky");
    let data = pattern(48 * MIB as usize, 5);
    write_file(&src, "big.bin", &data);
    for dest in [
        r#"{"storage": "archive", "container": "flaky"}"#,
        r#"{"storage": "fileshare", "share": "flaky"}"#,
    ] {
        let proxy = FaultProxy::start(
            stack.sshd.port,
            Policy {
                cut_after: 8 * MIB,
                faulty_connections: u64::MAX,
                ..Policy::default()
            },
        );
        let r = stack
            .run_with(&backup(&src, dest), &through(&stack, &proxy, &[]))
            .await;
        assert_eq!(
            (r.status, r.files.copied),
            (JobStatus::Succeeded, 1),
            "{dest}: {r:#?}"
        );
        // Every connection carried at most 8 MiB, so the file needed many, and a restart from
        // zero could never pass 8 MiB. What a cut costs is what was in flight on the link
        // (SFTP read-ahead), not what was read before it.
        assert!(
            proxy.connections() >= 6,
            "{dest}: {} connections",
            proxy.connections()
        );
        assert!(
            proxy.bytes_down() < 2 * data.len() as u64,
            "{dest}: {} bytes crossed the link for a {} byte file",
            proxy.bytes_down(),
            data.len()
        );
        println!(
            "{dest}: {} connections, {} cuts, {:.1} MiB over the link for 48 MiB",
            proxy.connections(),
            proxy.faults(),
            proxy.bytes_down() as f64 / MIB as f64
        );
    }
    assert_eq!(stack.azurite.read("flaky", "big.bin").await, data);
    assert!(stack.files.files("flaky") == vec![("big.bin".to_string(), data)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_cut_connection_does_not_fail_the_remaining_files() {
    let stack = Stack::start();
    stack.azurite.create_container("cut").await;
    let src = stack.source_dir("cut");
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| (format!("dir{}/f{i:02}.bin", i % 3), pattern(300 * 1024, i)))
        .collect();
    for (name, data) in &files {
        write_file(&src, name, data);
    }
    let proxy = FaultProxy::start(
        stack.sshd.port,
        Policy {
            cut_after: 2 * MIB,
            faulty_connections: 1,
            ..Policy::default()
        },
    );
    let r = stack
        .run_with(
            &backup(&src, r#"{"storage": "archive", "container": "cut"}"#),
            &through(&stack, &proxy, &[]),
        )
        .await;
    assert_eq!(proxy.faults(), 1, "the link was cut once");
    assert_eq!(
        (r.status, r.files.copied),
        (JobStatus::Succeeded, 24),
        "{r:#?}"
    );
    assert_eq!(proxy.connections(), 2, "one reconnect for the whole job");
    for (name, data) in &files {
        assert!(stack.azurite.read("cut", name).await == *data, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_read_times_out_and_the_file_is_finished_on_a_new_connection() {
    let stack = Stack::start();
    stack.azurite.create_container("stall").await;
    let src = stack.source_dir("stall");
    let data = pattern(8 * MIB as usize, 9);
    write_file(&src, "big.bin", &data);
    let proxy = FaultProxy::start(
        stack.sshd.port,
        Policy {
            stall_after: 2 * MIB,
            faulty_connections: 1,
            ..Policy::default()
        },
    );
    let profiles = through(
        &stack,
        &proxy,
        &[("BACKUP_STORAGE_OFFICE_NAS_SSH_READ_TIMEOUT", "2")],
    );
    let started = Instant::now();
    let r = stack
        .run_with(
            &backup(&src, r#"{"storage": "archive", "container": "stall"}"#),
            &profiles,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(
        (r.status, r.files.copied),
        (JobStatus::Succeeded, 1),
        "{r:#?}"
    );
    assert_eq!(proxy.faults(), 1);
    assert!(proxy.connections() >= 2);
    assert!(
        took < Duration::from_secs(30),
        "the stall held the job for {took:?}"
    );
    assert_eq!(stack.azurite.read("stall", "big.bin").await, data);
}

/// The file is rewritten in place (same size, new mtime) while its read is stalled; the read
/// then continues on a new connection into the new bytes. The re-stat after the last read sees
/// the new mtime, so the mix of two versions is never committed; the next run copies the new
/// version.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_rewritten_while_its_read_stalls_is_not_committed_as_a_mix() {
    let stack = Stack::start();
    stack.azurite.create_container("mixed").await;
    let src = stack.source_dir("mixed");
    let old = pattern(8 * MIB as usize, 21);
    let path = write_file(&src, "big.bin", &old);
    let proxy = FaultProxy::start(
        stack.sshd.port,
        Policy {
            stall_after: 3 * MIB,
            faulty_connections: 1,
            ..Policy::default()
        },
    );
    let profiles = through(
        &stack,
        &proxy,
        &[("BACKUP_STORAGE_OFFICE_NAS_SSH_READ_TIMEOUT", "3")],
    );
    let message = backup(&src, r#"{"storage": "archive", "container": "mixed"}"#);
    let new = pattern(old.len(), 22);
    let rewrite = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while proxy.faults() == 0 {
            assert!(Instant::now() < deadline, "the read never stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(&path, &new).unwrap();
        let later = std::fs::metadata(&path).unwrap().modified().unwrap() + Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
    };
    let (first, ()) = tokio::join!(stack.run_with(&message, &profiles), rewrite);
    assert_eq!(first.files.copied, 0, "{first:#?}");
    assert_eq!(
        first.errors[0].error.code, "transfer.source_changed",
        "{first:#?}"
    );
    assert!(
        stack.azurite.list("mixed").await.is_empty(),
        "a mixed file was committed"
    );

    let second = stack.run_with(&message, &profiles).await;
    assert_eq!(
        (second.status, second.files.copied),
        (JobStatus::Succeeded, 1),
        "{second:#?}"
    );
    let (stored, md5) = stack
        .azurite
        .read_whole("mixed", "big.bin")
        .await
        .expect("committed");
    assert!(stored == new, "the stored file is not the new version");
    assert_eq!(md5.as_deref(), Some(&md5::Md5::digest(&stored)[..]));
}

/// The benchmark's far-away link (`harness::latency`, `BENCH_RTT_MS`): every byte arrives, in
/// order, and a round trip costs two delays.
#[tokio::test(flavor = "multi_thread")]
async fn a_delayed_link_keeps_every_byte_in_order_and_costs_two_delays_a_round_trip() {
    use harness::latency::LatencyProxy;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut conn, _) = echo.accept().await.unwrap();
        let (mut rx, mut tx) = conn.split();
        tokio::io::copy(&mut rx, &mut tx).await.unwrap();
    });
    let one_way = Duration::from_millis(40);
    let proxy = LatencyProxy::start(target, one_way);
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .unwrap();
    let started = Instant::now();
    conn.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    conn.read_exact(&mut pong).await.unwrap();
    let round_trip = started.elapsed();
    assert_eq!(&pong, b"ping");
    assert!(round_trip >= 2 * one_way, "round trip {round_trip:?}");
    // Far more than one read of the proxy, written while the echo flows back.
    let data = pattern(3 * MIB as usize, 9);
    let (mut rx, mut tx) = conn.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move { tx.write_all(&sent).await.unwrap() });
    let mut back = vec![0u8; data.len()];
    rx.read_exact(&mut back).await.unwrap();
    writer.await.unwrap();
    assert!(back == data, "the bytes came back changed or out of order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_over_a_far_away_sftp_link_is_whole() {
    use harness::latency::LatencyProxy;
    let stack = Stack::start();
    stack.azurite.create_container("far").await;
    let src = stack.source_dir("far");
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            (
                format!("f{i}.bin"),
                pattern((i as usize + 1) * 700 * 1024, i),
            )
        })
        .collect();
    for (name, data) in &files {
        write_file(&src, name, data);
    }
    let proxy = LatencyProxy::start(stack.sshd.port, Duration::from_millis(10));
    let mut vars = stack.vars();
    harness::fault::route_sftp(&mut vars, proxy.port);
    let profiles = backup_common::config::Profiles::from_vars(vars);
    let r = stack
        .run_with(
            &backup(&src, r#"{"storage": "archive", "container": "far"}"#),
            &profiles,
        )
        .await;
    assert_eq!(
        (r.status, r.files.copied),
        (JobStatus::Succeeded, 6),
        "{r:#?}"
    );
    for (name, data) in &files {
        assert!(stack.azurite.read("far", name).await == *data, "{name}");
    }
}
