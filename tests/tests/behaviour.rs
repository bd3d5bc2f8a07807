//! One behaviour suite for every storage (SFTP, Azure Blob, Azure Files), through the two sides
//! of the object layer only (`Destination` writes, `Source` reads), on real servers: sizes around
//! the chunk edges written in any chunk order, odd names, overwrite, nothing visible before
//! commit, abort leaves nothing, delete, a link that dies mid-file (the old version stays whole),
//! listing, stat and read back (whole and from an offset).

use std::sync::Arc;

use backup_common::config::Profiles;
use backup_common::error::ErrorKind;
use backup_common::job::storages;
use backup_common::message::{DestinationRef, SourceRef, TargetRef};
use backup_common::storage::checksum::BodySum;
use backup_common::storage::{ChunkBuf, Destination, FileMeta, ListItem, RemoteFile, Source};
use backup_common::transfer::MergedListing;
use bytes::Bytes;
use harness::fault::{FaultProxy, Policy};
use harness::stack::{pattern, Stack};
use md5::{Digest, Md5};

const CHUNK: usize = 256 * 1024;
const MTIME: i64 = 1_700_000_000;

/// The two sides of one storage, rooted at the same place (`root` is what `Source` calls take).
struct Storage {
    write: Arc<dyn Destination>,
    read: Arc<dyn Source>,
    root: String,
}

/// The stack's profiles with one storage reached through `proxy` (the others directly).
fn through(stack: &Stack, storage: &str, proxy: &FaultProxy) -> Profiles {
    let mut vars = stack.vars();
    let endpoint =
        |port: u16, url: String| url.replace(&format!(":{port}/"), &format!(":{}/", proxy.port));
    match storage {
        "archive" => {
            let url = endpoint(stack.azurite.port, stack.azurite.endpoint());
            vars.insert("BACKUP_STORAGE_ARCHIVE_ENDPOINT".into(), url);
        }
        "fileshare" => {
            let url = endpoint(stack.files.port(), stack.files.endpoint());
            vars.insert("BACKUP_STORAGE_FILESHARE_ENDPOINT".into(), url);
        }
        _ => harness::fault::route_sftp(&mut vars, proxy.port),
    }
    Profiles::from_vars(vars)
}

fn proxy_for(stack: &Stack, storage: &str) -> FaultProxy {
    let port = match storage {
        "archive" => stack.azurite.port,
        "fileshare" => stack.files.port(),
        _ => stack.sshd.port,
    };
    FaultProxy::start(port, Policy::default())
}

fn blob(profiles: &Profiles) -> Storage {
    azure(profiles, "archive", Some("behaviour"), None)
}

fn files(profiles: &Profiles) -> Storage {
    azure(profiles, "fileshare", None, Some("behaviour"))
}

fn azure(
    profiles: &Profiles,
    storage: &str,
    container: Option<&str>,
    share: Option<&str>,
) -> Storage {
    let place = DestinationRef {
        storage: storage.into(),
        container: container.map(str::to_string),
        share: share.map(str::to_string),
        prefix: "suite".into(),
    };
    Storage {
        write: storages::destination(profiles, &place).unwrap(),
        read: storages::mirror(profiles, &place, "source").unwrap(),
        root: String::new(),
    }
}

fn sftp(stack: &Stack, profiles: &Profiles) -> Storage {
    use std::os::unix::fs::PermissionsExt;
    let dir = stack.sshd.data_dir().join("behaviour");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let root = dir.display().to_string();
    let target = TargetRef {
        storage: "office_nas".into(),
        path: Some(root.clone()),
        container: None,
        share: None,
        prefix: String::new(),
    };
    let source = SourceRef {
        storage: "office_nas".into(),
        path: root.clone(),
    };
    Storage {
        write: storages::target(profiles, &target).unwrap(),
        read: storages::source(profiles, &source).unwrap(),
        root,
    }
}

fn meta(data: &[u8]) -> FileMeta {
    FileMeta {
        size: data.len() as u64,
        mtime: MTIME,
        md5: Md5::digest(data).into(),
    }
}

/// Write `data` as the engine does: one request when it fits a chunk, else staged chunks, put
/// last to first (any order must do), then committed.
async fn write(s: &Storage, path: &str, data: &[u8]) {
    if data.len() <= CHUNK {
        let bytes = Bytes::copy_from_slice(data);
        s.write.put_small(path, bytes, &meta(data)).await.unwrap();
        return;
    }
    let before = s.write.stat(path).await.unwrap();
    let upload = s
        .write
        .start_upload(path, data.len() as u64, MTIME, CHUNK as u64)
        .await
        .unwrap();
    let chunks: Vec<&[u8]> = data.chunks(CHUNK).collect();
    for (i, chunk) in chunks.iter().enumerate().rev() {
        let sum = BodySum::crc64_of(chunk);
        let bytes = Bytes::copy_from_slice(chunk);
        upload
            .put_chunk(i as u64, (i * CHUNK) as u64, bytes, sum)
            .await
            .unwrap();
    }
    assert_eq!(
        s.write.stat(path).await.unwrap(),
        before,
        "{path}: the new version is visible before commit"
    );
    upload
        .commit(chunks.len() as u64, &meta(data))
        .await
        .unwrap();
}

async fn read(s: &Storage, path: &str, offset: u64) -> Vec<u8> {
    let mut reader = s.read.open(&s.root, path, offset).await.unwrap();
    let mut buf = ChunkBuf::heap(0);
    loop {
        let before = buf.len();
        reader.read_into(&mut buf, before + CHUNK).await.unwrap();
        if buf.len() == before {
            return buf.as_ref().to_vec();
        }
    }
}

/// Both sides' listings, which must agree and come in path order (byte order of the whole
/// path: what lets the engine merge a source walk with a destination listing).
async fn listing(s: &Storage) -> Vec<(String, u64)> {
    let mut items = s.read.list(&s.root).await.unwrap();
    let mut found = Vec::new();
    while let Some(item) = items.recv().await {
        match item {
            // SFTP lists a plain tree: the state folder shows there (Blob and Files skip it).
            ListItem::File(f) if f.path.starts_with(".backup-worker/") => {}
            ListItem::File(f) => found.push((f.path, f.size)),
            _ => {}
        }
    }
    let mut held = s.write.list().await.unwrap();
    let mut written = Vec::new();
    while let Some(file) = held.recv().await {
        let file = file.unwrap();
        written.push((file.path, file.remote.size));
    }
    assert_eq!(found, written, "the read and write sides list the same");
    let mut sorted = found.clone();
    sorted.sort();
    assert_eq!(found, sorted, "listed in path order");
    found
}

/// A multi-chunk overwrite whose link dies after its first chunk: the put fails as transient
/// once the retries are spent, and the old version stays whole under the name.
async fn fails_mid_file(s: &Storage, proxied: Storage, proxy: FaultProxy) {
    let old = pattern(2 * CHUNK + 1, 10);
    write(s, "midway.bin", &old).await;
    let upload = proxied
        .write
        .start_upload("midway.bin", 4 * CHUNK as u64, MTIME + 1, CHUNK as u64)
        .await
        .unwrap();
    let chunk = pattern(CHUNK, 11);
    let sum = BodySum::crc64_of(&chunk);
    upload
        .put_chunk(0, 0, Bytes::from(chunk.clone()), sum)
        .await
        .unwrap();
    drop(proxy); // every connection through it closes, and nothing listens there any more
    let failed = upload
        .put_chunk(1, CHUNK as u64, Bytes::from(chunk), sum)
        .await
        .expect_err("a chunk through a dead link");
    assert!(
        failed.is_transient() && failed.kind() == ErrorKind::Unavailable,
        "{failed:?}"
    );
    upload.abort().await; // best effort: the link is gone
    let stat = s
        .write
        .stat("midway.bin")
        .await
        .unwrap()
        .expect("the old version");
    assert_eq!(
        (stat.size, stat.source_mtime),
        (old.len() as u64, Some(MTIME))
    );
    assert!(
        read(s, "midway.bin", 0).await == old,
        "the old version is whole"
    );
}

async fn behaves(s: Storage, proxied: Storage, proxy: FaultProxy) {
    let sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345];
    let mut expected = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let path = format!("sizes/{size}.bin");
        let data = pattern(*size, i as u64 + 1);
        write(&s, &path, &data).await;
        assert!(read(&s, &path, 0).await == data, "{path} read back");
        let stat = s
            .write
            .stat(&path)
            .await
            .unwrap()
            .expect("stat after commit");
        assert_eq!(
            (stat.size, stat.source_mtime),
            (*size as u64, Some(MTIME)),
            "{path}"
        );
        assert_eq!(
            s.read.stat(&s.root, &path).await.unwrap(),
            Some((*size as u64, MTIME))
        );
        expected.push((path, *size as u64));
    }
    // A read from an offset (how a broken read resumes).
    let big = pattern(3 * CHUNK + 12_345, 6);
    let from = CHUNK as u64 + 7;
    let path = format!("sizes/{}.bin", big.len());
    assert!(
        read(&s, &path, from).await == big[from as usize..],
        "ranged read"
    );

    for name in [
        "ünïcødé/naïve café.txt",
        "with space/a b + c&d [1].txt",
        "%20literal.txt",
        "deep/a/b/c/d/e.txt",
        // A folder sorts as its name and `/`: a-b.txt < a.txt < a/x.txt < a0.txt.
        "order/a0.txt",
        "order/a/x.txt",
        "order/a.txt",
        "order/a-b.txt",
    ] {
        write(&s, name, name.as_bytes()).await;
        assert_eq!(read(&s, name, 0).await, name.as_bytes(), "{name}");
        expected.push((name.to_string(), name.len() as u64));
    }

    // Overwrite: the second version wins, whole.
    write(&s, "over.bin", &pattern(2 * CHUNK + 1, 7)).await;
    let second = pattern(CHUNK + 3, 8);
    write(&s, "over.bin", &second).await;
    assert!(read(&s, "over.bin", 0).await == second, "overwritten");
    expected.push(("over.bin".into(), second.len() as u64));

    // Abort: nothing under the name, no temporary in the listing.
    let upload = s
        .write
        .start_upload("aborted.bin", 2 * CHUNK as u64, MTIME, CHUNK as u64)
        .await
        .unwrap();
    let chunk = pattern(CHUNK, 9);
    let sum = BodySum::crc64_of(&chunk);
    upload
        .put_chunk(0, 0, Bytes::from(chunk), sum)
        .await
        .unwrap();
    upload.abort().await;
    assert!(s.write.stat("aborted.bin").await.unwrap().is_none());

    // The state store: a conditional write happens once; the first content stays.
    let first = Bytes::from_static(b"{\"first\": true}");
    assert!(s
        .write
        .create_state("runs/r/summary.json", first.clone())
        .await
        .unwrap());
    let second = Bytes::from_static(b"{\"second\": true}");
    assert!(!s
        .write
        .create_state("runs/r/summary.json", second)
        .await
        .unwrap());
    let kept = s.write.get_state("runs/r/summary.json").await.unwrap();
    assert_eq!(kept, Some(first), "the first write is kept");
    assert_eq!(
        s.write.list_state("runs/r").await.unwrap(),
        ["summary.json"],
        "no temporaries"
    );

    // Delete removes the file and nothing else; a second delete finds nothing.
    write(&s, "to delete/ä b.bin", b"short-lived").await;
    assert!(s.write.delete("to delete/ä b.bin").await.unwrap());
    assert!(s.write.stat("to delete/ä b.bin").await.unwrap().is_none());
    assert!(!s.write.delete("to delete/ä b.bin").await.unwrap());

    fails_mid_file(&s, proxied, proxy).await;
    expected.push(("midway.bin".into(), 2 * CHUNK as u64 + 1));

    expected.sort();
    assert_eq!(listing(&s).await, expected, "exactly what was committed");
    merged_lookups_agree_with_stat(&s).await;
}

/// The engine's merge of a listing with lookups answers as `stat` does, whether paths are asked
/// in path order (read forward) or not (asked one by one), present or absent.
async fn merged_lookups_agree_with_stat(s: &Storage) {
    let listing = s.write.list().await.unwrap();
    let mut merged = MergedListing::new(s.write.clone(), listing);
    for path in [
        "midway.bin",
        "order/a-b.txt",
        "order/a.txt",
        "order/a-b.txt", // asked again, out of order
        "order/a/absent.txt",
        "order/a/x.txt",
        "order/a0.txt",
        "deep/a/b/c/d/e.txt", // out of order
        "sizes/1.bin",
        "zzz-absent",
    ] {
        let looked_up = merged.lookup(path).await.unwrap();
        let stat = s.write.stat(path).await.unwrap();
        let key = |r: Option<RemoteFile>| r.map(|r| (r.size, r.source_mtime));
        assert_eq!(key(looked_up), key(stat), "{path}");
    }
    assert!(merged.finish().await, "the listing was read whole");
}

#[tokio::test]
async fn blob_behaves() {
    let stack = Stack::start();
    let proxy = proxy_for(&stack, "archive");
    stack.azurite.create_container("behaviour").await;
    let proxied = blob(&through(&stack, "archive", &proxy));
    behaves(blob(&stack.profiles()), proxied, proxy).await;
}

#[tokio::test]
async fn files_behaves() {
    let stack = Stack::start();
    let proxy = proxy_for(&stack, "fileshare");
    stack.files.create_share("behaviour");
    let proxied = files(&through(&stack, "fileshare", &proxy));
    behaves(files(&stack.profiles()), proxied, proxy).await;
}

#[tokio::test]
async fn sftp_behaves() {
    let stack = Stack::start();
    let proxy = proxy_for(&stack, "office_nas");
    let proxied = sftp(&stack, &through(&stack, "office_nas", &proxy));
    behaves(sftp(&stack, &stack.profiles()), proxied, proxy).await;
}
