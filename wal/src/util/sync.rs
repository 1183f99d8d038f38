//! The lock helper: one policy for a poisoned mutex, written once.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking the guard even if another thread panicked while holding it.
///
/// Use it only for data that stays consistent across a panic of its holder: a completion
/// slot, a queue or a map each of whose changes is one step. There, poisoning carries no
/// information, and refusing the lock would turn one thread's panic into a cascade that hides
/// the first failure. Data whose invariants a panicking holder may have broken half-way (the
/// WAL's writer state) must panic on poison instead, and does not use this helper.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::lock;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_is_still_taken() {
        let m = Arc::new(Mutex::new(5));
        let m2 = Arc::clone(&m);
        let r = std::thread::spawn(move || {
            let _g = m2.lock().expect("not yet poisoned");
            panic!("poison it");
        })
        .join();
        assert!(r.is_err(), "the thread panicked");
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 6);
    }
}
