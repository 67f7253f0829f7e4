//! Subscriptions on one socket: subscribe (authorize all, register, then
//! catch up from the store), live events with de-duplication and gap filling,
//! losing a subscription, and rollback of a failed subscribe.

use super::*;

impl Socket {
    pub(super) async fn on_live_event(
        &mut self,
        timeline: TimelineId,
        seq: Seq,
        frame: SharedFrame,
    ) -> Result<(), Stop> {
        let Some(&last) = self.subs.get(&timeline) else {
            return Ok(());
        };
        if seq <= last {
            return Ok(());
        }
        if seq > last + 1 {
            // Earlier events are committed (they were published after their
            // commit) but not here yet: send them from the store first.
            match self.catch_up(timeline).await {
                Ok(()) => {}
                Err(CatchUpError::Stop(s)) => return Err(s),
                Err(CatchUpError::Service(e)) => return self.lose_subscription(timeline, &e).await,
            }
            if self.subs.get(&timeline).is_some_and(|&l| l >= seq) {
                return Ok(());
            }
        }
        self.write(frame.to_string()).await?;
        self.subs.insert(timeline, seq);
        Ok(())
    }

    /// A subscription that can no longer be served (access removed, store
    /// down): stop it and tell the client to resubscribe, which reports why.
    pub(super) async fn lose_subscription(
        &mut self,
        timeline: TimelineId,
        e: &ServiceError,
    ) -> Result<(), Stop> {
        tracing::debug!(code = e.code().as_str(), %timeline, "subscription dropped");
        self.service.hub().unsubscribe(self.conn.id(), timeline);
        if let Some(after_seq) = self.subs.remove(&timeline) {
            self.send(&ServerFrame::Resync {
                timeline_id: timeline,
                after_seq,
            })
            .await?;
        }
        Ok(())
    }

    /// Sends every stored event after the subscription's position.
    pub(super) async fn catch_up(&mut self, timeline: TimelineId) -> Result<(), CatchUpError> {
        loop {
            let after = self.subs.get(&timeline).copied().unwrap_or(0);
            let page = self
                .service
                .catch_up(&self.principal, timeline, after)
                .await
                .map_err(CatchUpError::Service)?;
            for event in page.events {
                let seq = event.seq;
                self.send(&ServerFrame::Event { event })
                    .await
                    .map_err(CatchUpError::Stop)?;
                self.subs.insert(timeline, seq);
            }
            if !page.more {
                return Ok(());
            }
        }
    }

    /// Authorizes every timeline first (all or nothing), then for each:
    /// registers the live subscription, and only then reads the store from
    /// `after_seq` — so nothing committed in between can be missed; overlap is
    /// removed by `seq`.
    pub(super) async fn subscribe(&mut self, c: cmd::Subscribe) -> Result<OkResult, CommandError> {
        let mut wanted: Vec<(TimelineId, Seq)> = Vec::new();
        for t in &c.timelines {
            if !wanted.iter().any(|(id, _)| *id == t.timeline_id) {
                wanted.push((t.timeline_id, t.after_seq));
            }
        }
        let new = wanted
            .iter()
            .filter(|(t, _)| !self.subs.contains_key(t))
            .count();
        if self.subs.len() + new > MAX_SUBSCRIPTIONS {
            return Err(CommandError::Refused(
                ErrorCode::TooManySubscriptions,
                format!("at most {MAX_SUBSCRIPTIONS} timelines per connection"),
            ));
        }
        let mut newest = Vec::with_capacity(wanted.len());
        for (timeline, _) in &wanted {
            newest.push(
                self.service
                    .open_timeline(&self.principal, *timeline)
                    .await?,
            );
        }
        let mut subscribed = Vec::with_capacity(wanted.len());
        let mut added: Vec<TimelineId> = Vec::new();
        for ((timeline, after_seq), last_seq) in wanted.into_iter().zip(newest) {
            if self
                .service
                .hub()
                .subscribe(self.conn.id(), timeline)
                .is_err()
            {
                // The hub is closing this connection; the loop's next step
                // sends the close frame.
                self.rollback(&added);
                return Err(CommandError::Refused(
                    ErrorCode::Unavailable,
                    "connection is closing".into(),
                ));
            }
            if !self.subs.contains_key(&timeline) {
                added.push(timeline);
            }
            // A client cannot be ahead of the store; clamping keeps live events
            // from being mistaken for duplicates.
            self.subs.insert(timeline, after_seq.min(last_seq));
            match self.catch_up(timeline).await {
                Ok(()) => {}
                Err(CatchUpError::Stop(s)) => return Err(CommandError::Stop(s)),
                Err(CatchUpError::Service(e)) => {
                    // All or nothing: undo what this command subscribed.
                    self.rollback(&added);
                    return Err(CommandError::Service(e));
                }
            }
            subscribed.push(SubscribedTimeline {
                timeline_id: timeline,
                last_seq: self.subs[&timeline],
            });
        }
        Ok(OkResult::Subscribed { subscribed })
    }

    pub(super) fn rollback(&mut self, added: &[TimelineId]) {
        for t in added {
            self.subs.remove(t);
            self.service.hub().unsubscribe(self.conn.id(), *t);
        }
    }
}
