//! Lock files as restic writes and honours them, so that a `restic prune` a user runs never
//! deletes the packs of a snapshot we are writing, and our prune never runs under someone's
//! backup. (`rustic_core` 0.13 writes no locks; this is the part of restic's format it lacks.)
//!
//! A lock is `locks/<id>`: the JSON `{time, exclusive, hostname, username, pid}` encrypted with
//! the repository's master key (AES-256-CTR + Poly1305-AES, restic's cipher, from the crate
//! `rustic_core` itself uses), its id the SHA-256 of the encrypted bytes. As restic does: a
//! lock is refreshed every 5 minutes (a new one written, the old removed) and one not refreshed
//! for 30 minutes is stale and ignored; a backup, restore or check takes a shared lock and fails
//! only on an exclusive one; a forget or prune takes an exclusive lock and fails on any other.
//! Ours is written first and the others read after, so two takers racing both see each other.
//!
//! Blocking, like the rest of [`super`].

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use aes256ctr_poly1305aes::aead::AeadInPlace;
use aes256ctr_poly1305aes::{Aes256CtrPoly1305Aes, Key, Nonce};
use bytes::Bytes;
use rustic_core::repofile::MasterKey;
use rustic_core::{Id, ReadBackend};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::backend::ObjectBackend;
use crate::error::{Error, Result};

/// restic's `staleTimeout` and `refreshInterval`.
const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Backup, restore, check: many at once, but not under a prune.
    Shared,
    /// Forget, prune: alone.
    Exclusive,
}

/// restic's lock file, field for field (`uid`/`gid` left out, as restic does when zero).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockFile {
    pub time: String,
    pub exclusive: bool,
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub pid: i64,
}

impl LockFile {
    fn ours(kind: LockKind) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        LockFile {
            time: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            exclusive: kind == LockKind::Exclusive,
            // Never equal to a user's own host name: restic then judges it by age alone (its
            // "is that process still alive" test means nothing for a function instance).
            hostname: format!("backup-worker@{}", host.trim()),
            username: "backup-worker".into(),
            pid: i64::from(std::process::id()),
        }
    }

    /// Not refreshed for 30 minutes (or a time nobody can read): ignored, as restic does.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        match OffsetDateTime::parse(&self.time, &Rfc3339) {
            Ok(at) => now - at > STALE_AFTER,
            Err(_) => true,
        }
    }

    fn describe(&self, id: &Id) -> String {
        let kind = if self.exclusive { "an exclusive" } else { "a" };
        format!(
            "{kind} lock of {} (pid {}) taken at {} (locks/{})",
            self.hostname,
            self.pid,
            self.time,
            id.to_hex().as_str()
        )
    }
}

/// restic's cipher under the repository's master key.
struct Cipher(Aes256CtrPoly1305Aes);

impl Cipher {
    fn new(key: &MasterKey) -> Self {
        let mut raw = Key::default();
        raw[..32].copy_from_slice(&key.encrypt);
        raw[32..48].copy_from_slice(&key.mac.k);
        raw[48..].copy_from_slice(&key.mac.r);
        Cipher(Aes256CtrPoly1305Aes::new(&raw))
    }

    /// nonce ‖ ciphertext ‖ MAC.
    fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = Nonce::default();
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| Error::Internal("no system randomness for a lock's nonce".into()))?;
        let mut out = Vec::with_capacity(plain.len() + 32);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .0
            .encrypt_in_place_detached(&nonce, &[], &mut out[16..])
            .map_err(|_| Error::Internal("cannot encrypt a lock".into()))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// `None` when it is not ours to read (another key, damaged).
    fn open(&self, data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < 32 {
            return None;
        }
        let (nonce, rest) = data.split_at(16);
        let (body, tag) = rest.split_at(rest.len() - 16);
        let mut plain = body.to_vec();
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), &[], &mut plain, tag.into())
            .ok()?;
        Some(plain)
    }
}

/// A lock file's JSON: plain, or (repository format 2) a `2` byte and zstd.
fn decode(plain: &[u8]) -> Option<LockFile> {
    match plain.first()? {
        b'{' => serde_json::from_slice(plain).ok(),
        2 => serde_json::from_slice(&zstd::decode_all(&plain[1..]).ok()?).ok(),
        _ => None,
    }
}

/// Our lock on a repository, refreshed in the background until [`RepoLock::release`].
pub struct RepoLock {
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl RepoLock {
    /// Take a lock of `kind`, or fail with `snapshot.locked` naming who holds the repository.
    pub fn acquire(backend: &Arc<ObjectBackend>, key: &MasterKey, kind: LockKind) -> Result<Self> {
        let cipher = Arc::new(Cipher::new(key));
        let own = write_lock(backend, &cipher, kind)?;
        if let Err(e) = check_others(backend, &cipher, &own, kind) {
            let _ = backend.remove_lock(&own);
            return Err(e);
        }
        let (stop, stopped) = mpsc::channel();
        let current = Arc::new(Mutex::new(own));
        let (backend, refresher_current) = (backend.clone(), current.clone());
        let refresher = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH_EVERY) {
                refresh(&backend, &cipher, kind, &refresher_current);
            }
            if let Ok(id) = refresher_current.lock() {
                if let Err(e) = backend.remove_lock(&id) {
                    tracing::warn!(code = e.code(), error = %e, "cannot remove our repository lock");
                }
            }
        });
        Ok(RepoLock {
            stop: Some(stop),
            refresher: Some(refresher),
        })
    }

    /// Stop refreshing and remove the lock; returns once it is gone (or removing it failed).
    pub fn release(mut self) {
        self.stop.take();
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
        }
    }
}

/// Open the repository behind `backend` and take a lock of `kind` on it, as a job does: what an
/// operator's tool (or a test) uses to hold the repository for a while.
pub fn hold(
    backend: &Arc<ObjectBackend>,
    password: &crate::config::Secret,
    kind: LockKind,
) -> Result<RepoLock> {
    let repo =
        super::open_existing(backend, password)?.ok_or_else(|| super::no_repository(backend))?;
    RepoLock::acquire(backend, &repo.key(), kind)
}

impl Drop for RepoLock {
    /// Without `release` (a panic, an early return): the refresher removes the lock on its own.
    fn drop(&mut self) {
        self.stop.take();
    }
}

fn write_lock(backend: &ObjectBackend, cipher: &Cipher, kind: LockKind) -> Result<Id> {
    let json = serde_json::to_vec(&LockFile::ours(kind))
        .map_err(|e| Error::Internal(format!("cannot serialise a lock: {e}")))?;
    let sealed = cipher.seal(&json)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &sealed);
    let mut raw = [0u8; 32];
    raw.copy_from_slice(digest.as_ref());
    let id = Id::new(raw);
    backend.write_lock(&id, Bytes::from(sealed))?;
    Ok(id)
}

fn refresh(backend: &ObjectBackend, cipher: &Cipher, kind: LockKind, current: &Mutex<Id>) {
    match write_lock(backend, cipher, kind) {
        Ok(new) => {
            if let Ok(mut id) = current.lock() {
                let _ = backend.remove_lock(&id);
                *id = new;
            }
        }
        Err(e) => tracing::warn!(code = e.code(), error = %e, "cannot refresh our repository lock"),
    }
}

/// Fail if a lock other than `own` forbids taking one of `kind`.
fn check_others(backend: &ObjectBackend, cipher: &Cipher, own: &Id, kind: LockKind) -> Result<()> {
    let ids = backend.list_locks()?;
    let now = OffsetDateTime::now_utc();
    for id in ids.iter().filter(|id| *id != own) {
        // Gone since it was listed: released.
        let Ok(data) = backend.read_lock(id) else {
            continue;
        };
        let holder = match cipher.open(&data).as_deref().and_then(decode) {
            Some(lock) if lock.is_stale(now) => continue,
            Some(lock) if kind == LockKind::Exclusive || lock.exclusive => lock.describe(id),
            Some(_) => continue,
            // Unreadable: harmless to sharers, but nothing runs alone beside it.
            None if kind == LockKind::Exclusive => {
                format!("a lock it cannot read (locks/{})", id.to_hex().as_str())
            }
            None => continue,
        };
        return Err(Error::Locked {
            location: backend.location(),
            holder,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_stale_after_thirty_minutes_unrefreshed() {
        let mut lock = LockFile::ours(LockKind::Shared);
        let now = OffsetDateTime::now_utc();
        assert!(!lock.is_stale(now));
        assert!(lock.is_stale(now + Duration::from_secs(31 * 60)));
        lock.time = "2026-12-02T10:00:00.123456789+01:00".into(); // restic's own form
        let at = OffsetDateTime::parse("2026-12-02T09:20:00Z", &Rfc3339).unwrap();
        assert!(!lock.is_stale(at) && lock.is_stale(at + Duration::from_secs(11 * 60)));
        lock.time = "yesterday".into();
        assert!(lock.is_stale(now));
    }

    #[test]
    fn sealed_locks_open_with_the_same_key_only() {
        let key = MasterKey::new();
        let cipher = Cipher::new(&key);
        let json = serde_json::to_vec(&LockFile::ours(LockKind::Exclusive)).unwrap();
        let sealed = cipher.seal(&json).unwrap();
        let opened = cipher.open(&sealed).and_then(|p| decode(&p)).unwrap();
        assert!(opened.exclusive && opened.hostname.starts_with("backup-worker@"));
        assert!(Cipher::new(&MasterKey::new()).open(&sealed).is_none());
        let compressed = [&[2u8][..], &zstd::encode_all(&json[..], 3).unwrap()].concat();
        assert_eq!(decode(&compressed), Some(opened));
    }
}
