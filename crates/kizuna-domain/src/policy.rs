//! A facility's policy: the rules each facility sets for its own staff and its
//! own patients' groups. The access function ([`crate::access::decide`]) reads
//! it; nothing else interprets it.

use crate::kinds::{CrossFacility, PatientGroupCreators};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Everything a facility admin decides for the facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacilityPolicy {
    /// Who may register patients and so create patient groups.
    pub patient_group_creators: PatientGroupCreators,
    /// Whether this facility's staff may join other facilities' patient groups,
    /// and whether an admin of this facility must approve each time.
    pub staff_join_other_facilities: CrossFacility,
    /// Whether staff of other facilities may be invited into this facility's
    /// patient groups, and whether an admin of this facility must approve.
    pub outside_invitations: CrossFacility,
    /// Whether this facility's patient groups have a family timeline in use.
    /// Off: nobody sees it and nobody can be invited into it.
    pub family_timeline: bool,
    /// Whether staff log in with a client certificate and a password (true) or
    /// a password only.
    pub require_client_cert: bool,
    /// The hours in which notifications may be sent to this facility's staff
    /// (Japan time); `None`: any time.
    pub notification_hours: Option<NotificationHours>,
}

impl Default for FacilityPolicy {
    /// What a new facility starts with: staff create patient groups, staff may
    /// work in other facilities' groups and outsiders may be invited without
    /// an admin's approval (the patient's approval still applies), family
    /// timeline on, client certificate required, notifications at any time.
    fn default() -> Self {
        FacilityPolicy {
            patient_group_creators: PatientGroupCreators::Staff,
            staff_join_other_facilities: CrossFacility::Allowed,
            outside_invitations: CrossFacility::Allowed,
            family_timeline: true,
            require_client_cert: true,
            notification_hours: None,
        }
    }
}

/// A daily window, `HH:MM-HH:MM` in Japan time. The start is inclusive, the
/// end exclusive; a window whose end is before its start runs over midnight
/// (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationHours {
    /// Minutes after midnight, 0..1440.
    pub start_minute: u16,
    /// Minutes after midnight, 0..1440; different from the start.
    pub end_minute: u16,
}

/// Why a notification window was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notification hours must look like 08:30-18:00 (24-hour clock, start and end differ)")]
pub struct BadHours;

impl NotificationHours {
    /// Builds a window from minutes after midnight.
    pub fn new(start_minute: u16, end_minute: u16) -> Result<Self, BadHours> {
        if start_minute >= 1440 || end_minute >= 1440 || start_minute == end_minute {
            return Err(BadHours);
        }
        Ok(NotificationHours {
            start_minute,
            end_minute,
        })
    }

    /// Whether a moment, given as minutes after midnight Japan time, is inside.
    pub fn contains(self, minute: u16) -> bool {
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }

    /// Whether notifications may be sent at a Unix time in milliseconds.
    /// Japan has one time zone without daylight saving: UTC+9.
    pub fn allows_at_unix_ms(self, unix_ms: i64) -> bool {
        const JST_OFFSET_MS: i64 = 9 * 3_600_000;
        let minute = ((unix_ms + JST_OFFSET_MS).rem_euclid(86_400_000) / 60_000) as u16;
        self.contains(minute)
    }
}

fn parse_clock(s: &str) -> Result<u16, BadHours> {
    let (h, m) = s.split_once(':').ok_or(BadHours)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(BadHours);
    }
    let h: u16 = h.parse().map_err(|_| BadHours)?;
    let m: u16 = m.parse().map_err(|_| BadHours)?;
    if h > 23 || m > 59 {
        return Err(BadHours);
    }
    Ok(h * 60 + m)
}

impl FromStr for NotificationHours {
    type Err = BadHours;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s.split_once('-').ok_or(BadHours)?;
        NotificationHours::new(parse_clock(a)?, parse_clock(b)?)
    }
}

impl fmt::Display for NotificationHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )
    }
}

impl Serialize for NotificationHours {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NotificationHours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_print_and_round_trip() {
        let h: NotificationHours = "08:30-18:00".parse().unwrap();
        assert_eq!((h.start_minute, h.end_minute), (510, 1080));
        assert_eq!(h.to_string(), "08:30-18:00");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, "\"08:30-18:00\"");
        assert_eq!(serde_json::from_str::<NotificationHours>(&json).unwrap(), h);
    }

    #[test]
    fn malformed_hours_are_refused() {
        for bad in [
            "",
            "8:30-18:00",
            "08:30",
            "24:00-06:00",
            "08:60-09:00",
            "09:00-09:00",
            "aa:bb-cc:dd",
            "08:30-18:00-19:00",
            "-08:30-18:00",
        ] {
            assert_eq!(bad.parse::<NotificationHours>(), Err(BadHours), "{bad}");
        }
    }

    #[test]
    fn windows_over_midnight_and_japan_time() {
        let day: NotificationHours = "08:00-20:00".parse().unwrap();
        assert!(day.contains(8 * 60));
        assert!(!day.contains(20 * 60));
        assert!(!day.contains(7 * 60 + 59));
        let night: NotificationHours = "22:00-06:00".parse().unwrap();
        assert!(night.contains(23 * 60));
        assert!(night.contains(0));
        assert!(!night.contains(6 * 60));
        assert!(!night.contains(12 * 60));
        // 2026-11-21T00:00:00Z is 09:00 in Japan.
        let midnight_utc = 1_795_219_200_000i64;
        assert!(day.allows_at_unix_ms(midnight_utc));
        // 12:00Z is 21:00 in Japan.
        assert!(!day.allows_at_unix_ms(midnight_utc + 12 * 3_600_000));
    }

    #[test]
    fn policy_serializes_with_snake_case_words() {
        let v = serde_json::to_value(FacilityPolicy::default()).unwrap();
        assert_eq!(v["patient_group_creators"], "staff");
        assert_eq!(v["staff_join_other_facilities"], "allowed");
        assert_eq!(v["outside_invitations"], "allowed");
        assert_eq!(v["family_timeline"], true);
        assert_eq!(v["notification_hours"], serde_json::Value::Null);
    }
}
