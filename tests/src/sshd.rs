//! A throwaway OpenSSH server: its own host key, config and authorized key, logging in as the
//! unprivileged `bwtest` user (so file permissions are real), serving `internal-sftp`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for_port};

pub const TEST_USER: &str = "bwtest";
/// Set by `./dev install` (chpasswd). Only a local throwaway account has it.
pub const TEST_PASSWORD: &str = "bwtest-local-password";

pub struct Sshd {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

#[derive(Clone, Copy)]
pub struct SshdOptions {
    pub password_auth: bool,
    /// Accept keys listed in authorized_keys (off: only certificates can log in).
    pub authorized_keys: bool,
    /// Trust user certificates signed by this server's throwaway CA (see `client_certificate`).
    pub user_ca: bool,
    /// Offer only legacy algorithms (CBC cipher, SHA-1 key exchange and MAC), like an old NAS.
    pub legacy_only: bool,
    /// Passwords only through keyboard-interactive (PAM), as many distributions ship sshd.
    pub keyboard_interactive: bool,
    /// Offer only these ciphers (sshd's `Ciphers` list).
    pub ciphers: Option<&'static str>,
    /// Log at DEBUG1: the negotiated algorithms appear (`kex: client->server cipher: …`).
    pub debug_log: bool,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            password_auth: true,
            authorized_keys: true,
            user_ca: false,
            legacy_only: false,
            keyboard_interactive: false,
            ciphers: None,
            debug_log: false,
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    pub fn start() -> Sshd {
        Sshd::start_with(SshdOptions::default())
    }

    pub fn start_with(opts: SshdOptions) -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: run `./dev install` (Debian openssh-server)"
        );
        let dir = tempfile::Builder::new()
            .prefix("sshd-")
            .tempdir()
            .expect("tempdir");
        // The login user must reach the data directory.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let p = |name: &str| dir.path().join(name);
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f"])
            .arg(p("host_key")));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "client", "-f"])
            .arg(p("client_key")));
        if opts.authorized_keys {
            fs::copy(p("client_key.pub"), p("authorized_keys")).expect("authorized_keys");
        } else {
            fs::write(p("authorized_keys"), "").expect("authorized_keys");
        }
        fs::set_permissions(p("authorized_keys"), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        fs::create_dir_all(p("data")).expect("data dir");
        fs::set_permissions(p("data"), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::create_dir_all("/run/sshd").expect("/run/sshd");

        let mut extra = String::new();
        if opts.user_ca {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "ca", "-f"])
                .arg(p("user_ca")));
            run(Command::new("ssh-keygen")
                .args(["-q", "-s"])
                .arg(p("user_ca"))
                .args(["-I", "backup-worker-test", "-n", TEST_USER, "-V", "-5m:+1h"])
                .arg(p("client_key.pub")));
            extra.push_str(&format!(
                "TrustedUserCAKeys {}\n",
                p("user_ca.pub").display()
            ));
        }
        if opts.legacy_only {
            extra.push_str(
                "Ciphers aes128-cbc\nKexAlgorithms diffie-hellman-group14-sha1\nMACs hmac-sha1\n",
            );
        }
        if let Some(ciphers) = opts.ciphers {
            extra.push_str(&format!("Ciphers {ciphers}\n"));
        }
        let port = free_port();
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {pid}\n\
             AuthorizedKeysFile {auth}\nUsePAM {kbd}\nStrictModes no\nPermitRootLogin no\n\
             PasswordAuthentication {pw}\nKbdInteractiveAuthentication {kbd}\n\
             PubkeyAuthentication yes\nAllowUsers {TEST_USER}\nMaxStartups 100:30:200\n\
             Subsystem sftp internal-sftp -l INFO\nLogLevel {level}\n{extra}",
            host_key = p("host_key").display(),
            pid = p("sshd.pid").display(),
            auth = p("authorized_keys").display(),
            pw = yes_no(opts.password_auth),
            kbd = yes_no(opts.keyboard_interactive),
            level = if opts.debug_log { "DEBUG1" } else { "VERBOSE" },
        );
        fs::write(p("sshd_config"), config).expect("sshd_config");
        let log = fs::File::create(p("sshd.log")).expect("log");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(p("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        wait_for_port(port, "sshd", Duration::from_secs(10));
        Sshd { port, dir, child }
    }

    /// The listening sshd's process id (connections are its children: their CPU time lands in
    /// its `cutime`/`cstime` once they end).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Root of the files served (readable by the login user).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// The certificate for `client_key`, signed by the user CA (`SshdOptions::user_ca`).
    pub fn client_certificate(&self) -> PathBuf {
        self.dir.path().join("client_key-cert.pub")
    }

    /// Let another public key log in.
    pub fn authorize(&self, public_key: &Path) {
        let key = fs::read_to_string(public_key).expect("public key");
        let path = self.dir.path().join("authorized_keys");
        let mut keys = fs::read_to_string(&path).unwrap_or_default();
        keys.push_str(&key);
        fs::write(path, keys).expect("authorized_keys");
    }

    /// A known_hosts file listing this server's key.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts");
        if !path.exists() {
            let key = fs::read_to_string(self.dir.path().join("host_key.pub")).expect("host key");
            let mut fields = key.split_whitespace();
            let (alg, b64) = (
                fields.next().unwrap_or_default(),
                fields.next().unwrap_or_default(),
            );
            fs::write(&path, format!("[127.0.0.1]:{} {alg} {b64}\n", self.port))
                .expect("known_hosts");
        }
        path
    }

    /// `SHA256:…` of the host key, as `ssh-keygen -lf` prints it.
    pub fn host_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.path().join("host_key.pub"))
            .output()
            .expect("ssh-keygen -lf");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("fingerprint")
            .to_string()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh ed25519 key pair at `path` (and `path.pub`), encrypted with `passphrase` unless empty.
pub fn keygen(path: &Path, passphrase: &str) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-f"])
        .arg(path));
}
