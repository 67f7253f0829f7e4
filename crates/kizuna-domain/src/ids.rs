//! Identifier newtypes. Every id is a positive 64-bit integer assigned by the
//! store; the newtypes keep a `UserId` from being passed where a `GroupId` is
//! expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw integer, for the store and for wire formats.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A facility (clinic, hospital, nursing station, pharmacy, care office).
    FacilityId
);
id_type!(
    /// A user account of any kind.
    UserId
);
id_type!(
    /// A patient registered by a facility.
    PatientId
);
id_type!(
    /// A patient group, free group or community.
    GroupId
);
id_type!(
    /// One timeline of a group (team, family, main, consultation).
    TimelineId
);
id_type!(
    /// One stored event on a timeline.
    EventId
);
id_type!(
    /// An application to join a community.
    ApplicationId
);
id_type!(
    /// An invitation into a patient group.
    InvitationId
);
id_type!(
    /// A login session (one per device login; refresh tokens rotate within it).
    SessionId
);

/// Position of an event on its timeline: starts at 1, grows by one per event,
/// never has gaps.
pub type Seq = i64;
