//! How long one cache line takes to go from one CPU to the other and back.
//!
//! `rcv run --jobs 2` hands events and results between threads, so its
//! speed-up depends on this figure: about 60 ns when the machine's two
//! CPUs share a cache, several times that when they do not (on a virtual
//! machine the host decides, and may change it while a series of runs
//! goes on). docs/performance.md quotes it beside each `--jobs 2` series.
//!
//! `cargo run --release --example core_round_trip`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const ROUNDS: u64 = 2_000_000;

fn main() {
    let flag = Arc::new(AtomicU64::new(0));
    let other = {
        let flag = Arc::clone(&flag);
        // Odd values are this thread's turn: it answers each one with the next even value.
        std::thread::spawn(move || {
            for i in (1..2 * ROUNDS).step_by(2) {
                while flag.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                flag.store(i + 1, Ordering::Release);
            }
        })
    };
    let start = Instant::now();
    for i in (0..2 * ROUNDS).step_by(2) {
        while flag.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
        flag.store(i + 1, Ordering::Release);
    }
    let elapsed = start.elapsed();
    if other.join().is_err() {
        eprintln!("the other thread stopped");
        std::process::exit(1);
    }
    println!("round trip {:.1} ns", elapsed.as_nanos() as f64 / ROUNDS as f64);
}
