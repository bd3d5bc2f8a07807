//! Soak: many runs of one job through a misbehaving world, for Blob and for Files.
//!
//! Every link goes through a fault proxy (sshd, Azurite, the Files server) that cuts or resets
//! connections after a random byte count; the Files server answers bursts of 503/429 with
//! `Retry-After` in both forms; each round starts duplicate and concurrent deliveries of the
//! job, SIGKILLs some of them, and rewrites source files in place while they run (and, between
//! rounds, with size and mtime kept). An observer keeps downloading the destination the whole
//! time: a file under its final name must always be a version the source really had, with a
//! stored MD5 that matches its bytes. At the end one clean run (compare by hash) must leave every
//! source file there byte for byte.
//!
//! CI runs a short soak (`SOAK_ROUNDS`, default 4 per destination); set `SOAK_ROUNDS=30` (and
//! `SOAK_SEED` to replay one) for a long one.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use harness::fault::{FaultProxy, Policy};
use harness::stack::{pattern, write_file, Stack};
use md5::{Digest, Md5};

const MIB: u64 = 1024 * 1024;

/// A small deterministic generator (xorshift), seeded per run and printed for replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Every version each source path ever had (MD5s), recorded before it is written.
type Versions = Arc<Mutex<HashMap<String, HashSet<[u8; 16]>>>>;

#[derive(Default)]
struct Tally {
    jobs: AtomicU64,
    kills: AtomicU64,
    duplicates: AtomicU64,
    bursts: AtomicU64,
    rewrites: AtomicU64,
    observed: AtomicU64,
    seen_wrong: AtomicU64,
}

struct World {
    stack: Stack,
    proxies: Vec<FaultProxy>,
    vars: HashMap<String, String>,
    src: PathBuf,
    versions: Versions,
    tally: Tally,
}

impl World {
    fn start() -> World {
        let stack = Stack::start();
        let src = stack.source_dir("soak");
        let (ssh, blob, files) = (
            FaultProxy::start(stack.sshd.port, Policy::default()),
            FaultProxy::start(port_of(&stack.azurite.endpoint()), Policy::default()),
            FaultProxy::start(stack.files.port(), Policy::default()),
        );
        let mut vars = stack.vars();
        vars.insert(
            "BACKUP_STORAGE_OFFICE_NAS_SSH_PORT".into(),
            ssh.port.to_string(),
        );
        vars.remove("BACKUP_STORAGE_OFFICE_NAS_SSH_KNOWN_HOSTS_FILE");
        for (k, v) in [
            ("BACKUP_STORAGE_OFFICE_NAS_SSH_SKIP_HOST_KEY_CHECK", "true"),
            ("BACKUP_STORAGE_OFFICE_NAS_SSH_READ_TIMEOUT", "5"),
            ("BACKUP_STORAGE_ARCHIVE_REQUEST_TIMEOUT", "5"),
            ("BACKUP_STORAGE_FILESHARE_REQUEST_TIMEOUT", "5"),
            ("BACKUP_STORAGE_FILESHARE_RESUME_AFTER_SECS", "2"),
        ] {
            vars.insert(k.into(), v.into());
        }
        let blob_endpoint = stack.azurite.endpoint().replace(
            &format!(":{}/", port_of(&stack.azurite.endpoint())),
            &format!(":{}/", blob.port),
        );
        let files_endpoint = stack.files.endpoint().replace(
            &format!(":{}/", stack.files.port()),
            &format!(":{}/", files.port),
        );
        vars.insert("BACKUP_STORAGE_ARCHIVE_ENDPOINT".into(), blob_endpoint);
        vars.insert("BACKUP_STORAGE_FILESHARE_ENDPOINT".into(), files_endpoint);
        World {
            stack,
            proxies: vec![ssh, blob, files],
            vars,
            src,
            versions: Versions::default(),
            tally: Tally::default(),
        }
    }

    /// Write `data` at `rel` with `mtime`, after recording it as a version the source had.
    fn write(&self, rel: &str, data: &[u8], mtime: SystemTime) {
        let md5: [u8; 16] = Md5::digest(data).into();
        self.versions
            .lock()
            .unwrap()
            .entry(rel.to_string())
            .or_default()
            .insert(md5);
        let path = write_file(&self.src, rel, data);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }

    fn current(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.src.join(rel)).unwrap()
    }

    fn message(&self, dest: &str, compare: &str) -> String {
        format!(
            r#"{{"kind": "backup", "job_id": "soak",
                "source": {{"storage": "office_nas", "path": "{}"}}, "destination": {dest},
                "options": {{"chunk_size": "256KiB", "upload_concurrency": 4, "compare": "{compare}"}}}}"#,
            self.src.display()
        )
    }

    fn spawn(&self, message: &str) -> Child {
        self.tally.jobs.fetch_add(1, Ordering::Relaxed);
        harness::runner::spawn_with_vars(
            Path::new(env!("CARGO_BIN_EXE_backup-worker")),
            self.vars.clone(),
            message,
            &[("RUST_LOG", "warn")],
        )
    }
}

fn port_of(endpoint: &str) -> u16 {
    let after = endpoint
        .split("127.0.0.1:")
        .nth(1)
        .expect("a loopback endpoint");
    after.split('/').next().unwrap().parse().expect("a port")
}

const FILES: usize = 12;

fn name(i: usize) -> String {
    format!("d{}/file-{i:02}.bin", i % 3)
}

/// One round: faults armed, three deliveries (one delayed), a kill, in-place rewrites.
fn round(world: &World, rng: &mut Rng, dest: &str, files_dest: bool, round_no: u64) {
    for proxy in &world.proxies {
        proxy.set_policy(Policy {
            cut_after: 256 * 1024 + rng.below(4 * MIB),
            faulty_connections: proxy.connections() + 2 + rng.below(6),
            reset: rng.below(2) == 0,
            ..Policy::default()
        });
    }
    // A burst of busy answers (503/429, `Retry-After` in both forms) from the destination.
    if files_dest {
        let status = if rng.below(2) == 0 { 503 } else { 429 };
        world
            .stack
            .files
            .fail_next(1 + rng.below(4) as usize, status);
    } else {
        let azurite = &world.proxies[1];
        let mut policy = Policy {
            cut_after: 256 * 1024 + rng.below(4 * MIB),
            faulty_connections: azurite.connections() + 2 + rng.below(6),
            reset: rng.below(2) == 0,
            ..Policy::default()
        };
        policy.busy_answers = azurite.busy_served() + 1 + rng.below(3);
        azurite.set_policy(policy);
    }
    world.tally.bursts.fetch_add(1, Ordering::Relaxed);
    let message = world.message(dest, "size_mtime");
    let mut children = vec![world.spawn(&message), world.spawn(&message)];
    world.tally.duplicates.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(rng.below(400)));
    children.push(world.spawn(&message));
    world.tally.duplicates.fetch_add(1, Ordering::Relaxed);
    // Rewrite files in place while the runs read them: same size, a new mtime.
    // Each gets an mtime of its own: a rewrite during a read that kept the mtime could not be
    // seen (SFTP mtimes are whole seconds; see the README), and is not what this exercises.
    for k in 0..1 + rng.below(2) {
        let i = rng.below(FILES as u64) as usize;
        let len = world.current(&name(i)).len();
        let secs = 1_700_000_000 + round_no * 100 + k * FILES as u64 + i as u64;
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        world.write(&name(i), &pattern(len, rng.next()), mtime);
        world.tally.rewrites.fetch_add(1, Ordering::Relaxed);
    }
    std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
    let victim = rng.below(children.len() as u64) as usize;
    if children[victim].kill().is_ok() {
        world.tally.kills.fetch_add(1, Ordering::Relaxed);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for child in &mut children {
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "a run hung for two minutes");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Between rounds: one file rewritten with its size and mtime kept.
    let i = rng.below(FILES as u64) as usize;
    let path = world.src.join(name(i));
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let len = world.current(&name(i)).len();
    world.write(&name(i), &pattern(len, rng.next()), mtime);
    world.tally.rewrites.fetch_add(1, Ordering::Relaxed);
}

/// Check one file under its final name: a version the source had, MD5 matching its bytes.
fn judge(versions: &Versions, tally: &Tally, path: &str, data: &[u8], md5: Option<&[u8]>) {
    if path.starts_with(".backup-worker/")
        || path
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with(".bw-partial-"))
    {
        return;
    }
    tally.observed.fetch_add(1, Ordering::Relaxed);
    let actual: [u8; 16] = Md5::digest(data).into();
    let known = versions
        .lock()
        .unwrap()
        .get(path)
        .is_some_and(|v| v.contains(&actual));
    let consistent = md5 == Some(&actual[..]);
    if !known || !consistent {
        tally.seen_wrong.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "SEEN WRONG: {path} ({} bytes): known version {known}, stored MD5 matches {consistent}",
            data.len()
        );
    }
}

fn observe_share(world: &World, share: &str) {
    let snapshot: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = world.stack.files.with_store(|s| {
        s.shares
            .get(share)
            .map(|sh| {
                sh.nodes
                    .values()
                    .filter_map(|n| match n {
                        files_server::store::Node::File(f) => Some((
                            f.props.name.clone(),
                            f.read_all(),
                            f.http.content_md5.clone(),
                        )),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    for (path, data, md5) in snapshot {
        judge(&world.versions, &world.tally, &path, &data, md5.as_deref());
    }
}

async fn observe_container(world: &World, container: &str) {
    for name in world.stack.azurite.list(container).await {
        if let Some((data, md5)) = world.stack.azurite.read_whole(container, &name).await {
            judge(&world.versions, &world.tally, &name, &data, md5.as_deref());
        }
    }
}

fn soak(dest_kind: &str) {
    let rounds: u64 = std::env::var("SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let world = Arc::new(World::start());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let files_dest = dest_kind == "files";
    let dest = if files_dest {
        world.stack.files.create_share("soak");
        r#"{"storage": "fileshare", "share": "soak"}"#
    } else {
        runtime.block_on(world.stack.azurite.create_container("soak"));
        r#"{"storage": "archive", "container": "soak"}"#
    };
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    for i in 0..FILES {
        let len = (rng.below(5 * MIB / 2) as usize) * (i % 4).min(1); // some empty files
        world.write(&name(i), &pattern(len, rng.next()), start);
    }

    // The observer downloads the destination over and over until the rounds are done.
    let stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let (world, stop) = (world.clone(), stop.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            while !stop.load(Ordering::Relaxed) {
                if files_dest {
                    observe_share(&world, "soak");
                } else {
                    runtime.block_on(observe_container(&world, "soak"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    for r in 0..rounds {
        round(&world, &mut rng, dest, files_dest, r);
    }
    stop.store(true, Ordering::Relaxed);
    observer.join().unwrap();

    // Faults off; one clean run that compares by hash (a rewrite with its mtime kept is only
    // seen that way) must leave every source file in place.
    for proxy in &world.proxies {
        proxy.set_policy(Policy::default());
    }
    let out = world
        .spawn(&world.message(dest, "hash"))
        .wait_with_output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the final run: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut verified = 0;
    let mut lost = Vec::new();
    for i in 0..FILES {
        let want = world.current(&name(i));
        let stored = if files_dest {
            let all = world.stack.files.files("soak");
            all.into_iter().find(|(n, _)| *n == name(i)).map(|(_, d)| {
                let md5 = world
                    .stack
                    .files
                    .file_properties("soak", &name(i))
                    .and_then(|(m, _)| m);
                (d, md5)
            })
        } else {
            runtime.block_on(world.stack.azurite.read_whole("soak", &name(i)))
        };
        match stored {
            Some((data, md5))
                if data == want && md5.as_deref() == Some(&Md5::digest(&data)[..]) =>
            {
                verified += 1
            }
            _ => lost.push(name(i)),
        }
    }
    let t = &world.tally;
    let faults: u64 = world.proxies.iter().map(FaultProxy::faults).sum();
    println!(
        "soak {dest_kind} (seed {seed}, {rounds} rounds): jobs {}, link faults {faults}, 503/429 bursts {}, kills {}, duplicate deliveries {}, in-place rewrites {}, files observed {}, seen wrong {}, files verified {verified}, lost {}",
        t.jobs.load(Ordering::Relaxed),
        t.bursts.load(Ordering::Relaxed),
        t.kills.load(Ordering::Relaxed),
        t.duplicates.load(Ordering::Relaxed),
        t.rewrites.load(Ordering::Relaxed),
        t.observed.load(Ordering::Relaxed),
        t.seen_wrong.load(Ordering::Relaxed),
        lost.len()
    );
    assert_eq!(
        t.seen_wrong.load(Ordering::Relaxed),
        0,
        "a wrong file was visible (seed {seed})"
    );
    assert!(
        lost.is_empty(),
        "lost after the final run: {lost:?} (seed {seed})"
    );
    assert!(
        t.observed.load(Ordering::Relaxed) > 0,
        "the observer saw nothing"
    );
    assert!(faults > 0, "no link fault happened");
}

#[test]
fn soak_into_blob() {
    soak("blob");
}

#[test]
fn soak_into_files() {
    soak("files");
}
