//! Waiting for work handed to the worker pool.
//!
//! The driver runs on one of the pool's own threads, so `--jobs N` keeps N
//! threads busy, not N + 1: while a result it needs is not ready, that
//! thread runs queued work (parsing, replay) instead of sleeping.

use std::sync::mpsc::{Receiver, TryRecvError};

/// The next value from `rx`, running queued pool work while it is not
/// ready; `None` if the sender went away.
pub fn wait<T>(rx: &Receiver<T>) -> Option<T> {
    loop {
        match rx.try_recv() {
            Ok(value) => return Some(value),
            Err(TryRecvError::Disconnected) => return None,
            // Nothing queued here: the value is being made on another
            // thread, so sleep until it comes.
            Err(TryRecvError::Empty) => {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    return rx.recv().ok();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn runs_queued_work_while_waiting_on_a_single_thread_pool() {
        // One thread: the value can only come if `wait` runs the job itself.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let got = pool.install(|| {
            let (tx, rx) = mpsc::sync_channel(1);
            rayon::spawn_fifo(move || tx.send(42).unwrap());
            wait(&rx)
        });
        assert_eq!(got, Some(42));
    }

    #[test]
    fn reports_a_sender_that_went_away() {
        let (tx, rx) = mpsc::sync_channel::<u8>(1);
        drop(tx);
        assert_eq!(wait(&rx), None);
    }

    #[test]
    fn outside_a_pool_it_blocks_like_recv() {
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(wait(&rx), Some(7));
    }
}
