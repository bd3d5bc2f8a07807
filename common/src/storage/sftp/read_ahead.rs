//! How many read requests each open file keeps in flight (russh-sftp's read-ahead), chosen from
//! the connection's round trip: a file reads at most what is in flight per round trip, so a
//! fixed 2 MiB (what OpenSSH's `sftp` and rclone keep) caps a file at ~100 MB/s 20 ms away and
//! ~40 MB/s 50 ms away. Measured through the bench's delay lines (`BENCH_RTT_MS`, 1 GiB → Files):
//! 20 ms, 18.4 s with 8 requests against 9.1 s with 32; 50 ms, 33.6 s against 10.1 s (rclone,
//! which keeps 2 MiB: 55.9 s and 119.4 s). On loopback and a LAN 8 stay: more only made sshd
//! slower there (its buffers grow).

use std::time::Duration;

/// What one read request asks for: russh-sftp's packet limit (256 KiB) less the header.
const READ_SIZE: u64 = 256 * 1024;
/// Requests a file keeps at least: 2 MiB, ample for a LAN.
pub const FEWEST: usize = 8;
/// Requests a file keeps at most: 8 MiB. This memory is outside the chunk budget (four big
/// files at once hold up to 32 MiB of it), so it is bounded, not grown without end.
pub const MOST: usize = 32;
/// The read rate one file aims for, so that the requests in flight cover a round trip of it.
const RATE_PER_FILE: u64 = 400_000_000;

/// Requests in flight for a connection whose round trip is `round_trip`.
pub fn reads_in_flight(round_trip: Duration) -> usize {
    let bytes_per_round_trip = RATE_PER_FILE as f64 * round_trip.as_secs_f64();
    let requests = (bytes_per_round_trip / READ_SIZE as f64).ceil() as usize;
    requests.clamp(FEWEST, MOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_server_gets_the_fewest_and_a_far_one_more_up_to_the_most() {
        let ms = Duration::from_millis;
        assert_eq!(reads_in_flight(Duration::from_micros(80)), FEWEST);
        assert_eq!(reads_in_flight(ms(5)), FEWEST);
        // 10 ms: 4 MB a round trip at 400 MB/s, 16 requests of 256 KiB.
        assert_eq!(reads_in_flight(ms(10)), 16);
        // 20 ms: 8 MB, 30.5 requests, rounded up.
        assert_eq!(reads_in_flight(ms(20)), 31);
        assert_eq!(reads_in_flight(ms(25)), MOST);
        assert_eq!(reads_in_flight(ms(300)), MOST);
    }
}
