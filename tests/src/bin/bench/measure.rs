//! What one benchmarked process cost: wall time, CPU seconds (`wait4`'s rusage) and peak RSS
//! (`VmHWM`, polled: rusage's `ru_maxrss` keeps the forking parent's size across exec), and the
//! CPU seconds other processes (sshd, the sink) spent meanwhile, from `/proc/<pid>/stat`.

use std::io::Read;
use std::process::Child;
use std::time::{Duration, Instant};

pub const MIB: u64 = 1024 * 1024;

pub struct Measure {
    pub wall: Duration,
    /// User + system CPU seconds of the process (its children included).
    pub cpu: f64,
    pub peak_rss: u64,
    /// What the process printed (our runner: the job's result), and its log.
    pub stdout: String,
    pub stderr: String,
}

/// Wait for `child` and take its cost. Panics naming `what` if it failed.
pub fn measure(mut child: Child, what: &str) -> Measure {
    let started = Instant::now();
    // Drain stdout beside the wait, so a chatty process never blocks on a full pipe.
    let stdout = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        })
    });
    let stderr = child.stderr.take().map(|mut err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        })
    });
    let (status, usage, peak_rss) = wait_polling_rss(child.id() as libc::pid_t);
    let wall = started.elapsed();
    let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let exited_ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(
        exited_ok,
        "{what} failed (wait status {status}):\n{stdout}\n{stderr}"
    );
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Measure {
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_rss,
        stdout,
        stderr,
    }
}

/// Reap `pid` (a child of ours), with its resource usage and the highest `VmHWM` seen.
fn wait_polling_rss(pid: libc::pid_t) -> (i32, libc::rusage, u64) {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it and `status` for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut peak = 0;
    loop {
        peak = peak.max(high_water_mark(pid).unwrap_or(0));
        // SAFETY: valid pointers to locals; pid is a child this process spawned.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            return (status, usage, peak);
        }
        if r < 0 {
            let err = std::io::Error::last_os_error();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::Interrupted,
                "wait4({pid}): {err}"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The kernel's high-water mark of `pid`'s resident memory, in bytes.
fn high_water_mark(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// Whether `pid` has no live children (sshd's connection ended and was reaped).
fn childless(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|c| c.trim().is_empty())
        .unwrap_or(true)
}

/// One process as `/proc/<pid>/stat` shows it.
struct ProcStat {
    comm: String,
    zombie: bool,
    parent: u32,
    /// utime + stime + cutime + cstime: its own CPU seconds and its reaped children's.
    cpu: f64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (which may hold spaces) is in parentheses; fields follow the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); ppid is field 4, utime..cstime fields 14-17.
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ProcStat {
        comm,
        zombie: fields.first() == Some(&"Z"),
        parent: fields.get(1)?.parse().ok()?,
        cpu: ticks as f64 / per_second,
    })
}

/// CPU seconds `pid` has used so far, its reaped children included (sshd's connections end as
/// its children; their time is added to the listener's once they are reaped).
pub fn process_cpu(pid: u32) -> f64 {
    proc_stat(pid).map_or(0.0, |s| s.cpu)
}

/// Make this process the reaper of its descendants' orphans. An sshd session process can
/// outlive its parent (the connection's monitor); reaped by init, its CPU would be lost to
/// sshd's total (measured: our 1 GiB → Blob rows showed 0.03 sshd CPU s).
pub fn adopt_orphans() {
    // SAFETY: prctl with integer arguments only sets this process's child-subreaper flag.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// sshd's orphans that came to us ([`adopt_orphans`]): (pid, its stat).
fn sshd_orphans(watched: &[u32]) -> Vec<(u32, ProcStat)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !watched.contains(pid))
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .filter(|(_, s)| s.parent == me && (s.comm.starts_with("sshd") || s.comm == "sftp-server"))
        .collect()
}

/// The CPU seconds other processes spend over a span of time.
pub struct CpuWatch {
    pids: Vec<u32>,
    start: Vec<f64>,
}

impl CpuWatch {
    /// Watch `sshd` (its orphans count as its own) and `others`.
    pub fn start(sshd: u32, others: &[u32]) -> CpuWatch {
        let pids: Vec<u32> = std::iter::once(sshd)
            .chain(others.iter().copied())
            .collect();
        // Orphans of earlier runs are not this run's.
        reap(sshd_orphans(&pids).into_iter().filter(|(_, s)| s.zombie));
        CpuWatch {
            start: pids.iter().map(|p| process_cpu(*p)).collect(),
            pids,
        }
    }

    /// Seconds each process spent since `start`, once each has reaped its children (sshd the
    /// connection that just closed) and sshd's orphans have ended (at most 10 s); the orphans
    /// are reaped here and their CPU added to sshd's.
    pub fn stop(&self) -> Vec<f64> {
        let since = Instant::now();
        let settled = || {
            self.pids.iter().all(|p| childless(*p))
                && sshd_orphans(&self.pids).iter().all(|(_, s)| s.zombie)
        };
        while !settled() && since.elapsed().as_secs() < 10 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut spent: Vec<f64> = self
            .pids
            .iter()
            .zip(&self.start)
            .map(|(p, s)| process_cpu(*p) - s)
            .collect();
        let ended: Vec<_> = sshd_orphans(&self.pids)
            .into_iter()
            .filter(|(_, s)| s.zombie)
            .collect();
        spent[0] += ended.iter().map(|(_, s)| s.cpu).sum::<f64>();
        reap(ended.into_iter());
        spent
    }
}

/// Reap adopted orphans that have ended.
fn reap(ended: impl Iterator<Item = (u32, ProcStat)>) {
    for (pid, _) in ended {
        // SAFETY: `pid` is our own (adopted) child and a zombie: this only reaps it.
        unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
    }
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
