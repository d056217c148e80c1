//! A seeded synthetic site with the spread of a real one, relative to a start time.
//!
//! Users: mostly `CORP`, some `EXTERNAL`, a few `INTERNAL` service accounts (`sa_*`). Of the people, about 45% hold
//! a Professional seat, 45% an Analyzer seat and 4% a user (token) pass. Last use: ~55% within 30 days, ~20% 30-90
//! days, ~10% 90-365 days, ~6% over a year, ~7% never (created over the past year, a quarter of them within the
//! last 14 days), ~2% quarantined. A few users are tagged `VIP`, carry `LicenseCleanup=Exempt`, hold `RootAdmin`, or
//! are inactive or removed externally. Seat totals leave some free seats. Two login access groups have usage rows.

use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::records::{AllocRec, LastUsed, NewUser, QUARANTINE, SeatTotals, SimAccessType};
use crate::site::SiteState;
use crate::time::{millis, shift};

/// Who QRS names as the author of changes it makes itself.
const REPOSITORY: &str = "INTERNAL\\sa_repository";

const FIRST: &[&str] = &[
    "Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kari",
    "Lars", "Maja", "Nils", "Olga", "Per", "Quinn", "Rosa", "Sven", "Tuva", "Ulrik", "Vera", "Wei",
    "Xenia", "Yusuf", "Zofia", "Amir", "Bente", "Chen", "Dagny", "Erik", "Fatima", "Gustav",
    "Hanna", "Ivar", "Julia", "Kofi", "Lena", "Mateo", "Nora", "Oskar", "Priya", "Rahul", "Sara",
    "Tomas", "Una", "Viktor", "Wanda", "Yara", "Zain",
];

const LAST: &[&str] = &[
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Berg",
    "Haugen",
    "Hagen",
    "Eriksen",
    "Bakken",
    "Lund",
    "Moen",
    "Dahl",
    "Strand",
    "Solberg",
    "Garcia",
    "Nakamura",
    "Okafor",
    "Kowalski",
    "Novak",
    "Rossi",
    "Schmidt",
    "Dubois",
    "Silva",
    "Khan",
    "Lee",
    "Smith",
    "Brown",
    "Müller",
    "Öztürk",
    "Fernández",
    "Ivanova",
    "Nguyen",
    "Patel",
    "Cohen",
];

const DEPARTMENTS: &[&str] = &[
    "Finance",
    "Sales",
    "HR",
    "Operations",
    "IT",
    "Marketing",
    "Supply Chain",
];

const SERVICE_ACCOUNTS: &[&str] = &[
    "sa_repository",
    "sa_scheduler",
    "sa_api",
    "sa_engine",
    "sa_proxy",
    "sa_printing",
    "sa_hub",
    "sa_monitoring",
];

fn days(n: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(n * 86_400.0)
}

/// Adds `users` synthetic users (and their allocations, login usage and seat totals) to `site`.
///
/// The order of draws from the seeded generator is part of the contract: a seed gives the same site every time.
pub(crate) fn generate(site: &mut SiteState, seed: u64, users: usize, now: Timestamp) {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = millis(now);
    let services = add_service_accounts(site, &mut rng, users, now);
    let people = users - services;
    let mut login_users = Vec::new();
    let mut root_admins = 0usize;
    for i in 0..people {
        let (spec, is_root_admin) = person(&mut rng, i, people, root_admins);
        root_admins += usize::from(is_root_admin);
        let user_created = shift(now, -days(rng.random_range(1.0..1100.0)));
        let Ok(user) = site.add_user(&spec, user_created) else {
            continue;
        };
        let Some(kind) = seat_kind(&mut rng) else {
            login_users.push(user);
            continue;
        };
        let (last_used, created, quarantined) = usage(&mut rng, now, user_created);
        let modified = match last_used {
            LastUsed::At(t) => t,
            _ => created,
        };
        let id = site.new_id();
        let _ = site.insert_allocation(AllocRec {
            modified,
            quarantine_end: match (&last_used, quarantined) {
                (LastUsed::At(t), true) => Some(shift(*t, QUARANTINE)),
                _ => None,
            },
            last_used,
            quarantined,
            ..AllocRec::new(id, kind, user, created, REPOSITORY)
        });
    }
    if users >= 10 {
        add_login_usage(site, &mut rng, &login_users, now);
    }
    set_seat_totals(site, &mut rng, users);
    if users >= 10 {
        add_authoring(site, seed, now);
    }
}

/// Apps and app objects for right-sizing: most Professional users author (their own app and sheets changed in the
/// last two months), a few only consume (stories and bookmarks in the company app), some stopped authoring long
/// ago, and some generate on-demand apps (owned, and changed recently). Analyzer users make stories. A generator
/// of its own, so the rest of the site stays what the seed made it before apps existed.
fn add_authoring(site: &mut SiteState, seed: u64, now: Timestamp) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4150_5053_414e_4453);
    let Some(owner) = site.find_user("INTERNAL", "sa_repository") else {
        return;
    };
    let ago = |rng: &mut StdRng, from: f64, to: f64| shift(now, -days(rng.random_range(from..to)));
    let long_ago = ago(&mut rng, 600.0, 900.0);
    let Ok(company) = site.add_app(owner, "Company dashboard", (long_ago, long_ago)) else {
        return;
    };
    let holders = |site: &SiteState, kind| -> Vec<Uuid> {
        site.allocations(kind).filter_map(|a| a.user).collect()
    };
    for user in holders(site, SimAccessType::Professional) {
        let name = site.user(user).map(|u| u.name.clone()).unwrap_or_default();
        let roll = rng.random_range(0..100);
        let created = ago(&mut rng, 300.0, 800.0);
        // Most Professional users author; the few who only consume are what right-sizing finds.
        let (kind, object) = if roll < 70 {
            ("sheet", ("My sheet", ago(&mut rng, 0.0, 60.0)))
        } else if roll < 85 {
            ("story", ("Quarter in review", ago(&mut rng, 0.0, 30.0)))
        } else if roll < 90 {
            ("sheet", ("Old analysis", ago(&mut rng, 120.0, 400.0)))
        } else {
            ("app", ("On-demand sales", ago(&mut rng, 0.0, 20.0)))
        };
        let (title, modified) = object;
        let _ = match kind {
            "app" => site.add_app(user, &format!("{title} ({name})"), (created, modified)),
            "sheet" => site
                .add_app(user, &format!("{name}'s analysis"), (created, modified))
                .and_then(|app| {
                    site.add_app_object(app, user, ("sheet", title), (created, modified))
                }),
            _ => site.add_app_object(company, user, (kind, title), (created, modified)),
        };
    }
    for user in holders(site, SimAccessType::Analyzer) {
        let at = ago(&mut rng, 0.0, 90.0);
        let _ = site.add_app_object(company, user, ("bookmark", "My selection"), (at, at));
    }
}

/// Service accounts (RootAdmins of the INTERNAL directory) on any site of ten users or more; returns how many.
fn add_service_accounts(
    site: &mut SiteState,
    rng: &mut StdRng,
    users: usize,
    now: Timestamp,
) -> usize {
    let services = if users >= 10 {
        (3 + users / 2000).min(SERVICE_ACCOUNTS.len())
    } else {
        0
    };
    for name in &SERVICE_ACCOUNTS[..services] {
        let created = shift(now, -days(rng.random_range(700.0..1500.0)));
        let spec = NewUser::new("INTERNAL", *name).role("RootAdmin");
        let Ok(id) = site.add_user(&spec, created) else {
            continue;
        };
        // A service account that was handed a Professional seat once and never used it: a classic exclusion case.
        if *name == "sa_api" {
            let alloc = site.new_id();
            let allocated = shift(now, -days(rng.random_range(200.0..600.0)));
            let seat = AllocRec::new(
                alloc,
                SimAccessType::Professional,
                id,
                allocated,
                REPOSITORY,
            );
            let _ = site.insert_allocation(AllocRec {
                modified: created,
                ..seat
            });
        }
    }
    services
}

/// The `i`th of `people` people: name, directory, e-mail, department, tags, exemptions, roles and user state. The
/// second value says whether the person is a RootAdmin.
fn person(rng: &mut StdRng, i: usize, people: usize, root_admins: usize) -> (NewUser, bool) {
    let external = rng.random_bool(0.12);
    let directory = if external { "EXTERNAL" } else { "CORP" };
    let first = FIRST.choose(rng).copied().unwrap_or("Alex");
    let last = LAST.choose(rng).copied().unwrap_or("Doe");
    let user_id = if external {
        format!(
            "{}.{}{}@partner.example",
            first.to_lowercase(),
            ascii_fold(last).to_lowercase(),
            i
        )
    } else {
        let initial = first.chars().next().map_or('x', |c| c.to_ascii_lowercase());
        format!("{initial}{}{i}", ascii_fold(last).to_lowercase())
    };
    let mailbox = user_id.split('@').next().unwrap_or("user");
    let mut spec = NewUser::new(directory, user_id.clone())
        .name(format!("{first} {last}"))
        .attribute("email", format!("{mailbox}@example.com"));
    if let Some(dept) = DEPARTMENTS.choose(rng) {
        spec = spec.custom_property("Department", *dept);
    }
    if external {
        spec = spec.tag("Contractor");
    }
    if rng.random_bool(0.02) {
        spec = spec.tag("VIP");
    }
    if rng.random_bool(0.015) {
        spec = spec.custom_property("LicenseCleanup", "Exempt");
    }
    // At least one RootAdmin person on any site of reasonable size.
    let root_admin =
        rng.random_bool(0.005) || (root_admins == 0 && i == people / 2 && people >= 20);
    if root_admin {
        spec = spec.role("RootAdmin");
    } else if rng.random_bool(0.02) {
        spec = spec.role("ContentAdmin");
    }
    let status = rng.random::<f64>();
    if status < 0.02 {
        spec = spec.removed_externally(true);
    } else if status < 0.05 {
        spec = spec.inactive(true);
    } else if status < 0.055 {
        spec = spec.blacklisted(true);
    }
    (spec, root_admin)
}

/// The seat a person holds; None for the few who use login access instead.
fn seat_kind(rng: &mut StdRng) -> Option<SimAccessType> {
    let pick = rng.random::<f64>();
    if pick < 0.45 {
        Some(SimAccessType::Professional)
    } else if pick < 0.90 {
        Some(SimAccessType::Analyzer)
    } else if pick < 0.94 {
        Some(SimAccessType::User)
    } else {
        None
    }
}

/// Days since last use, by share of seats: 55% within a month, 20% one to three months, 10% up to a year, 6% up
/// to two years. Of the rest 7% were never used and 2% are in quarantine.
const USED_AGO: [(f64, std::ops::Range<f64>); 4] = [
    (0.55, 0.0..30.0),
    (0.75, 30.0..90.0),
    (0.85, 90.0..365.0),
    (0.91, 365.0..730.0),
];

/// A seat's last use, creation date and whether it waits out a quarantine.
fn usage(rng: &mut StdRng, now: Timestamp, user_created: Timestamp) -> (LastUsed, Timestamp, bool) {
    let bucket = rng.random::<f64>();
    if let Some((_, ago)) = USED_AGO.iter().find(|(below, _)| bucket < *below) {
        let used = shift(now, -days(rng.random_range(ago.clone())));
        let created = created_before(rng, used, user_created);
        return (LastUsed::At(millis(used)), created, false);
    }
    if bucket < 0.98 {
        let age = if rng.random_bool(0.25) {
            rng.random_range(0.0..14.0)
        } else {
            rng.random_range(14.0..365.0)
        };
        return (LastUsed::Never, shift(now, -days(age)), false);
    }
    // Deallocated within the last week while in use: waiting out the quarantine.
    let used = shift(now, -days(rng.random_range(0.5..6.5)));
    let created = created_before(rng, used, user_created);
    (LastUsed::At(millis(used)), created, true)
}

/// Two login access groups, with recent usage by the people who hold no seat.
fn add_login_usage(site: &mut SiteState, rng: &mut StdRng, login_users: &[Uuid], now: Timestamp) {
    let groups = [
        site.add_login_group("Occasional users", 10, shift(now, -days(400.0))),
        site.add_login_group("Contractors", 5, shift(now, -days(200.0))),
    ];
    for (i, user) in login_users.iter().enumerate() {
        let group = groups[i % groups.len()];
        // Each group holds at most its assigned passes (ten per token).
        let capacity = if i % 2 == 0 { 100 } else { 50 };
        if i / 2 >= capacity {
            break;
        }
        let start = shift(now, -days(rng.random_range(0.0..27.0)));
        let latest = shift(start, SignedDuration::from_mins(rng.random_range(5..60)));
        let _ = site.add_login_usage(group, *user, start, latest);
    }
}

/// Seat totals: what is held plus a few free seats of each kind.
fn set_seat_totals(site: &mut SiteState, rng: &mut StdRng, users: usize) {
    let summary = site.summary();
    let held = |t: crate::handle::TypeSummary| {
        u32::try_from(t.allocated + t.quarantined).unwrap_or(u32::MAX)
    };
    let free = |held: u32, rng: &mut StdRng| held / 20 + rng.random_range(1..=5);
    let professional = held(summary.professional);
    let analyzer = held(summary.analyzer);
    let user_passes = held(summary.user);
    let login_tokens = if users >= 10 { 15 } else { 0 };
    site.seats = SeatTotals {
        professional: professional + free(professional, rng),
        analyzer: analyzer + free(analyzer, rng),
        tokens: user_passes + login_tokens + free(user_passes, rng),
    };
}

/// A creation date between the user's creation (or up to two years earlier than the use) and the first use.
fn created_before(rng: &mut StdRng, used: Timestamp, user_created: Timestamp) -> Timestamp {
    let earliest = user_created.max(shift(used, -days(730.0)));
    if earliest >= used {
        return used;
    }
    let span = used.duration_since(earliest).as_secs_f64();
    shift(
        earliest,
        SignedDuration::from_secs_f64(rng.random_range(0.0..=span)),
    )
}

/// User ids stay ASCII, as directory account names usually are.
fn ascii_fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'ü' => 'u',
            'Ö' => 'O',
            'ö' => 'o',
            'á' => 'a',
            'é' => 'e',
            c if c.is_ascii() => c,
            _ => 'x',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(seed: u64, users: usize, now: Timestamp) -> SiteState {
        let mut s = SiteState::new(seed, super::super::NEVER_USED_SENTINEL, now);
        generate(&mut s, seed, users, now);
        s
    }

    fn fingerprint(s: &SiteState) -> String {
        let mut out = String::new();
        for u in s.users() {
            out.push_str(&serde_json::to_string(&s.user_view(u).full(false)).unwrap_or_default());
        }
        for kind in SimAccessType::PER_USER {
            for a in s.allocations(kind) {
                out.push_str(
                    &serde_json::to_string(&s.alloc_view(a).full(false)).unwrap_or_default(),
                );
            }
        }
        out.push_str(&format!("{:?}", s.seats));
        out
    }

    #[test]
    fn same_seed_same_site() {
        let now: Timestamp = "2025-06-01T12:00:00Z".parse().expect("valid");
        assert_eq!(
            fingerprint(&site(42, 300, now)),
            fingerprint(&site(42, 300, now))
        );
        assert_ne!(
            fingerprint(&site(42, 300, now)),
            fingerprint(&site(43, 300, now))
        );
    }

    #[test]
    fn spread_is_realistic() {
        let now: Timestamp = "2025-06-01T12:00:00Z".parse().expect("valid");
        let s = site(7, 5000, now);
        let summary = s.summary();
        assert_eq!(summary.users, 5000);
        let per_user = (summary.professional.allocated
            + summary.professional.quarantined
            + summary.analyzer.allocated
            + summary.analyzer.quarantined
            + summary.user.allocated
            + summary.user.quarantined) as f64;
        let professional =
            (summary.professional.allocated + summary.professional.quarantined) as f64;
        assert!(
            (0.42..0.55).contains(&(professional / per_user)),
            "{professional} of {per_user}"
        );
        let never = (summary.professional.never_used
            + summary.analyzer.never_used
            + summary.user.never_used) as f64;
        assert!(
            (0.05..0.09).contains(&(never / per_user)),
            "never used {never}"
        );
        let quarantined = (summary.professional.quarantined + summary.analyzer.quarantined) as f64;
        assert!((0.01..0.04).contains(&(quarantined / per_user)));
        assert!(
            summary.seats.professional as usize
                > summary.professional.allocated + summary.professional.quarantined
        );
        assert!(
            s.users()
                .any(|u| u.user_directory == "INTERNAL" && u.user_id.starts_with("sa_"))
        );
        assert!(s.users().any(|u| u.user_directory == "EXTERNAL"));
        assert!(
            s.users()
                .any(|u| u.roles.iter().any(|r| r == "RootAdmin") && u.user_directory == "CORP")
        );
        assert!(s.users().any(|u| u.removed_externally && u.inactive));
        assert_eq!(s.login_groups().count(), 2);
        assert!(s.login_usage().count() > 0);
        let ids: std::collections::HashSet<_> = s
            .users()
            .map(|u| (u.user_directory.clone(), u.user_id.clone()))
            .collect();
        assert_eq!(ids.len(), 5000, "user ids are unique");
    }
}
