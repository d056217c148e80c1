//! Authoring evidence for right-sizing: whether a Professional user made or changed an app, a sheet or a master item
//! within a window, judged from what QRS says the user owns.
//!
//! Analyzer users can read, make stories, bookmarks and snapshots, and export, but cannot create or edit sheets or
//! apps. So a Professional user who authored nothing within the window can move to Analyzer. Anything the rules
//! cannot read or place (a missing date, an object type they do not know) counts as authoring: the seat stays.
//! An app's `modifiedDate` moves on reloads too, and on-demand apps belong to whoever generated them: both read as
//! authoring, which errs on the side of the seat.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

/// What kind of thing a user owns, as far as right-sizing is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    App,
    Sheet,
    /// A master dimension, measure or visualisation: edited in an app the user can edit.
    MasterItem,
    /// Stories, bookmarks and snapshots: Analyzer users make these too.
    Consumption(String),
    /// An app object type the rules do not know: counted as authoring.
    Unknown(String),
}

impl ObjectKind {
    /// The kind of an app object from QRS's `objectType` (case as QRS writes it, compared without case).
    pub fn of_object_type(object_type: &str) -> Self {
        match object_type.to_ascii_lowercase().as_str() {
            "sheet" => ObjectKind::Sheet,
            "masterobject" | "dimension" | "measure" => ObjectKind::MasterItem,
            "story" | "bookmark" | "snapshot" => ObjectKind::Consumption(object_type.to_string()),
            _ => ObjectKind::Unknown(object_type.to_string()),
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectKind::App => f.write_str("app"),
            ObjectKind::Sheet => f.write_str("sheet"),
            ObjectKind::MasterItem => f.write_str("master item"),
            ObjectKind::Consumption(t) | ObjectKind::Unknown(t) => f.write_str(t),
        }
    }
}

/// An app or app object a user owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub kind: ObjectKind,
    pub name: String,
    pub created: Option<Timestamp>,
    /// `None` when QRS sent none or one that could not be read.
    pub modified: Option<Timestamp>,
}

impl Owned {
    /// When the user last made or changed it: the later of its creation and its last change. `None` when either
    /// date is missing: a change cannot be ruled out.
    fn authored_at(&self) -> Option<Timestamp> {
        Some(self.created?.max(self.modified?))
    }
}

/// The last thing a user authored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastAuthored {
    pub kind: ObjectKind,
    pub name: String,
    pub at: Timestamp,
}

/// What a user's objects say about their Professional seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Authored nothing within the window: the seat may move to Analyzer. `last` is the latest authoring before
    /// the window, if any.
    Consumer { last: Option<LastAuthored> },
    /// Authored within the window: the seat stays.
    Author(LastAuthored),
    /// Something could not be read or placed: the seat stays.
    Unclear(String),
}

impl Evidence {
    pub fn may_move(&self) -> bool {
        matches!(self, Evidence::Consumer { .. })
    }
}

/// Judges what a user owns against a window of `after_days` before `now`. The window's first instant belongs to
/// it: something changed exactly `after_days` ago is recent authoring.
pub fn judge(owned: &[Owned], now: Timestamp, after_days: u32) -> Evidence {
    let window_start = now
        .checked_sub(SignedDuration::from_hours(i64::from(after_days) * 24))
        .unwrap_or(Timestamp::MIN);
    let mut latest: Option<LastAuthored> = None;
    let mut unclear = None;
    for object in owned {
        match &object.kind {
            ObjectKind::Consumption(_) => continue,
            ObjectKind::Unknown(t) => {
                unclear.get_or_insert_with(|| {
                    format!(
                        "owns {:?} of type {t:?}, which the rules do not know",
                        object.name
                    )
                });
                continue;
            }
            ObjectKind::App | ObjectKind::Sheet | ObjectKind::MasterItem => {}
        }
        let Some(at) = object.authored_at() else {
            unclear.get_or_insert_with(|| {
                format!("{} {:?} has no readable date", object.kind, object.name)
            });
            continue;
        };
        if latest.as_ref().is_none_or(|l| at > l.at) {
            latest = Some(LastAuthored {
                kind: object.kind.clone(),
                name: object.name.clone(),
                at,
            });
        }
    }
    match (latest, unclear) {
        (Some(last), _) if last.at >= window_start => Evidence::Author(last),
        (_, Some(why)) => Evidence::Unclear(why),
        (last, None) => Evidence::Consumer { last },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ts;

    const NOW: &str = "2026-12-01T12:00:00Z";

    fn owned(kind: ObjectKind, name: &str, created: &str, modified: &str) -> Owned {
        let at = |t: &str| (!t.is_empty()).then(|| ts(t));
        Owned {
            kind,
            name: name.into(),
            created: at(created),
            modified: at(modified),
        }
    }

    fn judge_now(owned: &[Owned]) -> Evidence {
        judge(owned, ts(NOW), 90)
    }

    #[test]
    fn owning_nothing_is_a_consumer_with_no_last() {
        assert_eq!(judge_now(&[]), Evidence::Consumer { last: None });
    }

    #[test]
    fn each_authoring_kind_within_the_window_keeps_the_seat() {
        for kind in [ObjectKind::App, ObjectKind::Sheet, ObjectKind::MasterItem] {
            let recent = owned(
                kind.clone(),
                "Q3 draft",
                "2025-01-01T00:00:00Z",
                "2026-11-01T00:00:00Z",
            );
            assert_eq!(
                judge_now(&[recent]),
                Evidence::Author(LastAuthored {
                    kind,
                    name: "Q3 draft".into(),
                    at: ts("2026-11-01T00:00:00Z"),
                })
            );
        }
    }

    #[test]
    fn stories_bookmarks_and_snapshots_are_not_authoring() {
        for t in ["story", "bookmark", "snapshot", "Story"] {
            let recent = owned(
                ObjectKind::of_object_type(t),
                "mine",
                "2026-11-30T00:00:00Z",
                "2026-11-30T00:00:00Z",
            );
            assert_eq!(
                judge_now(&[recent]),
                Evidence::Consumer { last: None },
                "{t}"
            );
        }
    }

    #[test]
    fn object_types_map_to_kinds() {
        assert_eq!(ObjectKind::of_object_type("sheet"), ObjectKind::Sheet);
        assert_eq!(ObjectKind::of_object_type("Sheet"), ObjectKind::Sheet);
        for t in ["masterobject", "dimension", "measure"] {
            assert_eq!(ObjectKind::of_object_type(t), ObjectKind::MasterItem, "{t}");
        }
        assert_eq!(
            ObjectKind::of_object_type("appprops"),
            ObjectKind::Unknown("appprops".into())
        );
    }

    #[test]
    fn the_window_is_inclusive_at_its_start() {
        // 90 days of 24 hours before NOW is 2026-09-02T12:00:00Z.
        let at_start = owned(
            ObjectKind::Sheet,
            "edge",
            "2026-01-01T00:00:00Z",
            "2026-09-02T12:00:00Z",
        );
        assert!(matches!(judge_now(&[at_start]), Evidence::Author(_)));
        let just_before = owned(
            ObjectKind::Sheet,
            "edge",
            "2026-01-01T00:00:00Z",
            "2026-09-02T11:59:59Z",
        );
        assert_eq!(
            judge_now(&[just_before]),
            Evidence::Consumer {
                last: Some(LastAuthored {
                    kind: ObjectKind::Sheet,
                    name: "edge".into(),
                    at: ts("2026-09-02T11:59:59Z"),
                })
            }
        );
    }

    #[test]
    fn a_recent_creation_is_authoring_whatever_the_modified_date() {
        let created_recently = owned(
            ObjectKind::App,
            "new",
            "2026-11-20T00:00:00Z",
            "2026-01-01T00:00:00Z",
        );
        assert!(matches!(
            judge_now(&[created_recently]),
            Evidence::Author(_)
        ));
    }

    #[test]
    fn the_last_authoring_before_the_window_is_the_latest_one() {
        let older = owned(
            ObjectKind::App,
            "old app",
            "2024-01-01T00:00:00Z",
            "2025-03-01T00:00:00Z",
        );
        let newer = owned(
            ObjectKind::Sheet,
            "old sheet",
            "2024-01-01T00:00:00Z",
            "2026-04-30T00:00:00Z",
        );
        let Evidence::Consumer { last: Some(last) } = judge_now(&[older, newer]) else {
            panic!("a consumer");
        };
        assert_eq!(
            (last.kind, last.name.as_str()),
            (ObjectKind::Sheet, "old sheet")
        );
    }

    #[test]
    fn what_cannot_be_read_or_placed_keeps_the_seat() {
        let no_date = owned(ObjectKind::Sheet, "undated", "2024-01-01T00:00:00Z", "");
        assert!(matches!(judge_now(&[no_date]), Evidence::Unclear(_)));
        let no_creation = owned(ObjectKind::App, "undated", "", "2024-01-01T00:00:00Z");
        assert!(matches!(judge_now(&[no_creation]), Evidence::Unclear(_)));
        let unknown = owned(
            ObjectKind::of_object_type("appprops"),
            "x",
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
        );
        let evidence = judge_now(&[unknown]);
        assert!(
            matches!(&evidence, Evidence::Unclear(why) if why.contains("appprops")),
            "{evidence:?}"
        );
        assert!(!evidence.may_move());
        // Undated consumption objects are not authoring whatever their dates.
        let undated_story = owned(ObjectKind::Consumption("story".into()), "s", "", "");
        assert!(judge_now(&[undated_story]).may_move());
    }

    #[test]
    fn recent_authoring_is_reported_before_what_is_unclear() {
        let recent = owned(
            ObjectKind::Sheet,
            "live",
            "2024-01-01T00:00:00Z",
            "2026-11-30T00:00:00Z",
        );
        let undated = owned(ObjectKind::Sheet, "undated", "", "");
        assert!(matches!(judge_now(&[undated, recent]), Evidence::Author(_)));
    }
}
