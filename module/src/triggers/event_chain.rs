//! The chain of the keyspace event being dispatched on this thread: the registrations
//! whose runs raised it (the one that wrote it, the one whose event started that one, ...).
//! A registration never fires on its own chain's events, as Redis does not call a
//! subscriber about its own writes; so no chain of sync triggers recurses forever.
//! `nested.rs` gives each queued event the chain it was raised in; `keys.rs` asks it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::engine::registration::Registration;

/// Registrations by address (identity only: a registration dropped and another made at
/// its address inside one callback would be taken for it).
#[derive(Clone, Debug, PartialEq)]
pub struct Chain(Option<Rc<[usize]>>);

impl Chain {
    pub const EMPTY: Chain = Chain(None);

    /// No registration raised it (a client's command did).
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(|c| c.is_empty())
    }

    fn contains(&self, id: usize) -> bool {
        self.0.as_deref().is_some_and(|c| c.contains(&id))
    }

    /// This chain followed by `id` (a registration firing inside it).
    fn then(&self, id: usize) -> Chain {
        let mut ids = self.0.as_deref().unwrap_or(&[]).to_vec();
        ids.push(id);
        Chain(Some(ids.into()))
    }
}

thread_local! {
    /// The chain of the event being dispatched.
    static CHAIN: RefCell<Chain> = const { RefCell::new(Chain::EMPTY) };
    /// The registration firing now (0: none).
    static FIRING: Cell<usize> = const { Cell::new(0) };
}

fn id_of(reg: &Arc<Registration>) -> usize {
    Arc::as_ptr(reg) as usize
}

/// Dispatches the next events as raised in `chain`.
pub fn enter(chain: Chain) {
    CHAIN.with(|c| *c.borrow_mut() = chain);
}

/// Forgets the chain (the notification callback is over).
pub fn reset() {
    enter(Chain::EMPTY);
    FIRING.with(|f| f.set(0));
}

/// The chain and the firing registration as they were; restored on drop.
pub struct Saved {
    chain: Chain,
    firing: usize,
}

/// Keeps the current chain and firing registration, to be given back when the guard
/// drops (a notification callback raised inside a post-notification job's run must leave
/// that run's own chain as it found it).
pub fn save() -> Saved {
    Saved {
        chain: CHAIN.with(|c| c.borrow().clone()),
        firing: FIRING.with(Cell::get),
    }
}

/// Dispatches the next events as raised in `chain`, nothing firing yet, until the guard
/// drops (a post-notification job: `post_job.rs`).
pub fn scope(chain: Chain) -> Saved {
    let saved = save();
    enter(chain);
    FIRING.with(|f| f.set(0));
    saved
}

impl Drop for Saved {
    fn drop(&mut self) {
        enter(std::mem::replace(&mut self.chain, Chain::EMPTY));
        FIRING.with(|f| f.set(self.firing));
    }
}

/// The chain of an event raised now: the current one, followed by the registration
/// firing, if any.
pub fn of_event_now() -> Chain {
    let chain = CHAIN.with(|c| c.borrow().clone());
    match FIRING.with(Cell::get) {
        0 => chain,
        id => chain.then(id),
    }
}

/// Whether the event being dispatched (or queued) was raised by the runs of `reg`: its
/// own writes, or those of what it started.
pub fn in_chain(reg: &Arc<Registration>) -> bool {
    has(id_of(reg))
}

fn has(id: usize) -> bool {
    FIRING.with(Cell::get) == id || CHAIN.with(|c| c.borrow().contains(id))
}

/// Marks `reg` as firing while the guard lives: what its inline run writes is in its chain.
pub struct Firing(usize);

pub fn firing(reg: &Arc<Registration>) -> Firing {
    mark(id_of(reg))
}

fn mark(id: usize) -> Firing {
    Firing(FIRING.with(|f| f.replace(id)))
}

/// A chain of these registration ids (tests of other modules).
#[cfg(test)]
pub fn chain_for_tests(ids: &[usize]) -> Chain {
    Chain(Some(ids.into()))
}

/// Marks the id as firing (tests of other modules).
#[cfg(test)]
pub fn firing_id_for_tests(id: usize) -> Firing {
    mark(id)
}

impl Drop for Firing {
    fn drop(&mut self) {
        FIRING.with(|f| f.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_grows_by_the_registration_that_fires_inside_it() {
        let top = Chain::EMPTY;
        assert!(!top.contains(7));
        let one = top.then(7);
        let two = one.then(9);
        assert!(one.contains(7) && !one.contains(9));
        assert!(two.contains(7) && two.contains(9));
        assert_eq!(two.0.as_deref(), Some(&[7, 9][..]));
        // The parent is untouched: sibling events keep their own chain.
        assert_eq!(one.0.as_deref(), Some(&[7][..]));
    }

    #[test]
    fn the_firing_registration_is_in_the_chain_while_it_fires() {
        enter(Chain::EMPTY.then(3));
        assert!(has(3) && !has(7) && !has(9));
        {
            let _outer = mark(7);
            assert!(has(3) && has(7));
            assert_eq!(of_event_now(), Chain::EMPTY.then(3).then(7));
            {
                let _inner = mark(9);
                assert!(has(9) && !has(7));
            }
            assert!(has(7));
        }
        assert!(!has(7));
        reset();
        assert!(!has(3));
    }

    #[test]
    fn only_a_chain_without_registrations_is_empty() {
        assert!(Chain::EMPTY.is_empty());
        assert!(Chain(Some(Vec::new().into())).is_empty());
        assert!(!Chain::EMPTY.then(1).is_empty());
    }

    #[test]
    fn a_scope_gives_back_the_chain_and_the_firing_registration() {
        enter(Chain::EMPTY.then(3));
        let _outer = mark(7);
        {
            let _job = scope(Chain::EMPTY.then(5));
            assert!(has(5) && !has(3) && !has(7));
            assert_eq!(of_event_now(), Chain::EMPTY.then(5));
            {
                let _callback = save();
                enter(Chain::EMPTY);
                let _firing = mark(9);
                assert!(!has(5));
            }
            assert!(has(5) && !has(9));
        }
        assert!(has(3) && has(7) && !has(5));
        drop(_outer);
        reset();
    }
}
