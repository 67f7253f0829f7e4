//! Small synchronisation helpers.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, recovering from poisoning: every critical section in this
/// crate is a few plain assignments and map operations that leave the data
/// consistent even if a panic unwinds through them, and one panicking task must
/// not take every connection of the node down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
