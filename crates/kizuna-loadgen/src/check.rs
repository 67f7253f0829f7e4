//! Correctness while measuring: every receiver checks, per subscribed
//! timeline, that it got every `seq` exactly once and in order, and that what
//! it got at each `seq` is the post the sender's `ok` said was stored there.
//!
//! The receiver records as it goes ([`TimelineCheck::on_event`]); once the
//! senders are done, [`TimelineCheck::verdict`] compares that record with the
//! authoritative list of stored posts ([`Stored`]).

use kizuna_domain::Seq;
use serde::Serialize;
use std::collections::HashMap;

/// No content recorded for a `seq` (an event not made by this load generator).
const FOREIGN: u64 = u64::MAX;

/// What one receiver saw on one timeline.
#[derive(Debug, Clone)]
pub struct TimelineCheck {
    /// The `after_seq` of the first subscribe: events from `start + 1` are expected.
    start: Seq,
    /// The last `seq` received (or `start`).
    last: Seq,
    /// How many times each `seq` after `start` arrived (index `seq - start - 1`).
    counts: Vec<u32>,
    /// Content id received first at each `seq` (same index).
    content: Vec<u64>,
    /// Events whose `seq` was not `last + 1` when they arrived.
    out_of_order: u64,
    /// Events at or below `start` (the client already had them).
    below_start: u64,
    /// Every `seq` up to this one has arrived (advanced as events come).
    complete: Seq,
}

/// Counts of what went wrong (all zero in a correct run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Events received and checked.
    pub received: u64,
    /// Stored posts (by `seq`) a receiver never got.
    pub lost: u64,
    /// Extra copies of a `seq` (including ones at or below the subscription's start).
    pub duplicated: u64,
    /// Events that did not arrive as the next `seq` after the previous one.
    pub out_of_order: u64,
    /// Events whose content differs from what the sender's `ok` stored at that `seq`.
    pub wrong_content: u64,
    /// `seq`s received for which no sender `ok` says what was stored (its
    /// answer was lost); their content could not be compared.
    pub unverified: u64,
}

impl Verdict {
    /// Adds another verdict's counts.
    pub fn add(&mut self, o: &Verdict) {
        self.received += o.received;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
        self.wrong_content += o.wrong_content;
        self.unverified += o.unverified;
    }

    /// True when nothing was lost, duplicated, reordered or changed.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0 && self.wrong_content == 0
    }
}

/// The authoritative record of one timeline: what the senders' `ok`s said was
/// stored at each `seq`.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    by_seq: HashMap<Seq, u64>,
    newest: Seq,
}

impl Stored {
    /// Records that `seq` holds the post `content_id`.
    pub fn insert(&mut self, seq: Seq, content_id: u64) {
        self.by_seq.insert(seq, content_id);
        self.newest = self.newest.max(seq);
    }

    /// Merges another record of the same timeline.
    pub fn merge(&mut self, other: &Stored) {
        for (&s, &c) in &other.by_seq {
            self.insert(s, c);
        }
    }

    /// The newest `seq` any `ok` reported: receivers must get everything up to it.
    pub fn newest(&self) -> Seq {
        self.newest
    }

    /// Number of posts recorded.
    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    /// True when no post was recorded.
    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }
}

impl TimelineCheck {
    /// A check for a subscription starting after `start`.
    pub fn new(start: Seq) -> TimelineCheck {
        TimelineCheck {
            start,
            last: start,
            counts: Vec::new(),
            content: Vec::new(),
            out_of_order: 0,
            below_start: 0,
            complete: start,
        }
    }

    /// The last `seq` received: where a re-subscribe resumes.
    pub fn last(&self) -> Seq {
        self.last
    }

    /// Every `seq` up to this one has arrived.
    pub fn complete_up_to(&self) -> Seq {
        self.complete
    }

    /// Number of events recorded.
    pub fn received(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum::<u64>() + self.below_start
    }

    /// Records one delivered event.
    pub fn on_event(&mut self, seq: Seq, content: Option<u64>) {
        if seq != self.last + 1 {
            self.out_of_order += 1;
        }
        if seq > self.start {
            let i = (seq - self.start - 1) as usize;
            if i >= self.counts.len() {
                self.counts.resize(i + 1, 0);
                self.content.resize(i + 1, FOREIGN);
            }
            if self.counts[i] == 0 {
                self.content[i] = content.unwrap_or(FOREIGN);
            }
            self.counts[i] = self.counts[i].saturating_add(1);
        } else {
            self.below_start += 1;
        }
        self.last = self.last.max(seq);
        while self
            .counts
            .get((self.complete - self.start) as usize)
            .is_some_and(|&c| c > 0)
        {
            self.complete += 1;
        }
    }

    /// Compares what arrived with what was stored up to `stored.newest()`.
    pub fn verdict(&self, stored: &Stored) -> Verdict {
        let mut v = Verdict {
            received: self.received(),
            out_of_order: self.out_of_order,
            duplicated: self.below_start,
            ..Verdict::default()
        };
        let upto = stored.newest().max(self.start + self.counts.len() as Seq);
        for seq in self.start + 1..=upto {
            let i = (seq - self.start - 1) as usize;
            let count = self.counts.get(i).copied().unwrap_or(0);
            if count == 0 {
                if seq <= stored.newest() {
                    v.lost += 1;
                }
                continue;
            }
            v.duplicated += u64::from(count - 1);
            match stored.by_seq.get(&seq) {
                Some(&c) if c == self.content[i] => {}
                Some(_) => v.wrong_content += 1,
                None => v.unverified += 1,
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(n: Seq) -> Stored {
        let mut s = Stored::default();
        for seq in 1..=n {
            s.insert(seq, seq as u64 * 10);
        }
        s
    }

    #[test]
    fn every_seq_once_in_order_is_clean() {
        let mut c = TimelineCheck::new(0);
        for seq in 1..=5 {
            c.on_event(seq, Some(seq as u64 * 10));
        }
        let v = c.verdict(&stored(5));
        assert!(v.is_clean(), "{v:?}");
        assert_eq!(v.received, 5);
        assert_eq!(c.complete_up_to(), 5);
    }

    #[test]
    fn a_missing_seq_is_lost_and_the_jump_is_out_of_order() {
        let mut c = TimelineCheck::new(0);
        for seq in [1, 2, 4, 5] {
            c.on_event(seq, Some(seq as u64 * 10));
        }
        let v = c.verdict(&stored(5));
        assert_eq!((v.lost, v.out_of_order, v.duplicated), (1, 1, 0));
        assert_eq!(c.complete_up_to(), 2);
    }

    #[test]
    fn a_repeated_seq_is_a_duplicate() {
        let mut c = TimelineCheck::new(0);
        for seq in [1, 2, 2, 3] {
            c.on_event(seq, Some(seq as u64 * 10));
        }
        let v = c.verdict(&stored(3));
        assert_eq!((v.lost, v.duplicated), (0, 1));
        assert_eq!(v.out_of_order, 1);
    }

    #[test]
    fn resuming_after_start_expects_only_later_seqs() {
        let mut c = TimelineCheck::new(3);
        c.on_event(3, Some(30));
        c.on_event(4, Some(40));
        c.on_event(5, Some(50));
        let v = c.verdict(&stored(5));
        assert_eq!((v.lost, v.duplicated, v.out_of_order), (0, 1, 1));
    }

    #[test]
    fn a_swapped_body_is_wrong_content() {
        let mut c = TimelineCheck::new(0);
        c.on_event(1, Some(20));
        c.on_event(2, Some(10));
        let v = c.verdict(&stored(2));
        assert_eq!(v.wrong_content, 2);
    }

    #[test]
    fn missing_tail_counts_as_lost() {
        let mut c = TimelineCheck::new(0);
        c.on_event(1, Some(10));
        assert_eq!(c.verdict(&stored(4)).lost, 3);
    }
}
