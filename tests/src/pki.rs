//! Throwaway certificates for the token tests, made once per test process with the `openssl`
//! command-line tool (a client nobody here wrote): a CA, a server certificate for
//! `127.0.0.1`/`localhost` that Azurite, the Files server and the identity endpoint present, and
//! an Entra app's client certificate as PEM and as password-protected PKCS12.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const PKCS12_PASSWORD: &str = "p12-test-password";

pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// The process-wide set (generated on first use; the directory lives as long as the process).
    pub fn get() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("test-pki-")
                .tempdir()
                .expect("tempdir")
                .keep();
            generate(&dir);
            Pki { dir }
        })
    }

    /// The CA to trust (`CA_CERT_FILE`).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// Certificate and unencrypted RSA key in one PEM file.
    pub fn client_pem(&self) -> PathBuf {
        self.dir.join("client-combined.pem")
    }

    /// The same certificate and key as PKCS12, protected by [`PKCS12_PASSWORD`].
    pub fn client_p12(&self) -> PathBuf {
        self.dir.join("client.p12")
    }

    /// The client certificate in DER (its SHA-1 is the `x5t` thumbprint).
    pub fn client_cert_der(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("client.der")).expect("client.der")
    }

    /// The client's RSA public key, PKCS#1 DER, to verify assertions with.
    pub fn client_public_key(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("client.pub.der")).expect("client.pub.der")
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn generate(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("server.ext");
    let steps: &[&[&str]] = &[
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3",
            "-subj",
            "/CN=backup-worker test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "3",
            "-extfile",
            "server.ext",
        ],
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.crt",
            "-days",
            "3",
            "-subj",
            "/CN=backup-worker test app",
        ],
        &[
            "pkcs12",
            "-export",
            "-in",
            "client.crt",
            "-inkey",
            "client.key",
            "-out",
            "client.p12",
            "-passout",
            &format!("pass:{PKCS12_PASSWORD}"),
        ],
        &[
            "x509",
            "-in",
            "client.crt",
            "-outform",
            "DER",
            "-out",
            "client.der",
        ],
        &[
            "rsa",
            "-in",
            "client.key",
            "-RSAPublicKey_out",
            "-outform",
            "DER",
            "-out",
            "client.pub.der",
        ],
    ];
    for step in steps {
        openssl(dir, step);
    }
    let combined = [
        std::fs::read_to_string(dir.join("client.crt")).expect("client.crt"),
        std::fs::read_to_string(dir.join("client.key")).expect("client.key"),
    ]
    .concat();
    std::fs::write(dir.join("client-combined.pem"), combined).expect("combined pem");
}
