//! The benchmark's data sets: reproducible pseudo-random bytes (no two MiB alike, nothing
//! compressible), written once under the SFTP server's data root.

use std::io::Write;
use std::path::{Path, PathBuf};

use harness::stack::pattern;

use super::measure::MIB;

#[derive(Clone, Copy, PartialEq)]
pub enum Set {
    OneGiB,
    TenMiB,
    SmallFiles,
    FourGiB,
}

pub const ALL: [Set; 4] = [Set::OneGiB, Set::TenMiB, Set::SmallFiles, Set::FourGiB];

impl Set {
    /// Its name on the command line (`./dev bench 1g 16k`).
    pub fn key(self) -> &'static str {
        match self {
            Set::OneGiB => "1g",
            Set::TenMiB => "10m",
            Set::SmallFiles => "16k",
            Set::FourGiB => "4g",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Set::OneGiB => "1 x 1 GiB",
            Set::TenMiB => "100 x 10 MiB",
            Set::SmallFiles => "10000 x 16 KiB",
            Set::FourGiB => "1 x 4 GiB",
        }
    }

    /// (files, bytes of each).
    pub fn shape(self) -> (u64, u64) {
        match self {
            Set::OneGiB => (1, 1024 * MIB),
            Set::TenMiB => (100, 10 * MIB),
            Set::SmallFiles => (10_000, 16 * 1024),
            Set::FourGiB => (1, 4096 * MIB),
        }
    }

    pub fn files(self) -> u64 {
        self.shape().0
    }

    pub fn bytes(self) -> u64 {
        let (files, each) = self.shape();
        files * each
    }

    /// Write the set under `root/<key>` (100 files a folder) unless it is there already;
    /// returns its folder.
    pub fn write(self, root: &Path) -> std::io::Result<PathBuf> {
        let dir = root.join(format!("set-{}", self.key()));
        let done = root.join(format!("set-{}.complete", self.key()));
        if done.exists() {
            return Ok(dir);
        }
        let (files, each) = self.shape();
        for i in 0..files {
            let folder = dir.join(format!("d{:03}", i / 100));
            std::fs::create_dir_all(&folder)?;
            let mut f = std::fs::File::create(folder.join(format!("f{i:05}.bin")))?;
            let mut left = each;
            let mut piece = 0;
            while left > 0 {
                let len = left.min(MIB);
                f.write_all(&pattern(len as usize, i * 1_000_003 + piece))?;
                left -= len;
                piece += 1;
            }
        }
        std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&dir)
            .status()?;
        std::fs::write(done, b"")?;
        Ok(dir)
    }
}
