//! Seeded random streams. Each draw comes from a PCG stream keyed by
//! (seed, request id, attempt, purpose), so a request's draws never depend
//! on which other requests ran before it or on which thread.

use rand_core::Rng as _;
use rand_pcg::Pcg64;

/// What a draw is for; each purpose has its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Jitter = 1,
    Simulation = 2,
}

/// A random stream.
pub struct Stream(Pcg64);

impl Stream {
    /// A uniform draw in `[0, 1)` with 53 bits of precision.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// FNV-1a, 64-bit: a stable hash of the request id (std's hasher is not
/// guaranteed stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64 finaliser, to spread nearby keys apart.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn stream(seed: u64, request_id: &str, attempt: u32, purpose: Purpose) -> Stream {
    let hi = mix(seed ^ mix(fnv1a(request_id.as_bytes())));
    let lo = mix(u64::from(attempt) ^ (purpose as u64) << 32);
    let state = (u128::from(hi) << 64) | u128::from(lo);
    Stream(Pcg64::new(state, u128::from(purpose as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a = stream(1, "r", 1, Purpose::Jitter).unit();
        assert_eq!(a, stream(1, "r", 1, Purpose::Jitter).unit());
        assert_ne!(a, stream(1, "r", 2, Purpose::Jitter).unit());
        assert_ne!(a, stream(2, "r", 1, Purpose::Jitter).unit());
        assert_ne!(a, stream(1, "r", 1, Purpose::Simulation).unit());
        assert!((0.0..1.0).contains(&a));
    }

    #[test]
    fn draws_are_roughly_uniform() {
        let n = 10_000;
        let mean: f64 =
            (0..n).map(|i| stream(0, &format!("r{i}"), 1, Purpose::Simulation).unit()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }
}
