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

use super::site::{
    AllocRec, LastUsed, NewUser, QUARANTINE, SeatTotals, SimAccessType, SiteState, millis, shift,
};

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
pub(crate) fn generate(site: &mut SiteState, seed: u64, users: usize, now: Timestamp) {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = millis(now);

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
            let _ = site.insert_allocation(AllocRec {
                id: alloc,
                kind: SimAccessType::Professional,
                user: Some(id),
                deleted_user: None,
                created: shift(now, -days(rng.random_range(200.0..600.0))),
                modified: created,
                modified_by: "INTERNAL\\sa_repository".to_string(),
                last_used: LastUsed::Never,
                excess: false,
                quarantined: false,
                quarantine_end: None,
            });
        }
    }

    let people = users - services;
    let mut login_users = Vec::new();
    let mut root_admins = 0usize;
    for i in 0..people {
        let external = rng.random_bool(0.12);
        let directory = if external { "EXTERNAL" } else { "CORP" };
        let first = FIRST.choose(&mut rng).copied().unwrap_or("Alex");
        let last = LAST.choose(&mut rng).copied().unwrap_or("Doe");
        let user_id = if external {
            format!(
                "{}.{}{}@partner.example",
                first.to_lowercase(),
                ascii_fold(last).to_lowercase(),
                i
            )
        } else {
            format!(
                "{}{}{}",
                first
                    .chars()
                    .next()
                    .map(|c| c.to_ascii_lowercase())
                    .unwrap_or('x'),
                ascii_fold(last).to_lowercase(),
                i
            )
        };
        let mut spec = NewUser::new(directory, user_id.clone()).name(format!("{first} {last}"));
        spec = spec.attribute(
            "email",
            format!(
                "{}@example.com",
                user_id.split('@').next().unwrap_or("user")
            ),
        );
        if let Some(dept) = DEPARTMENTS.choose(&mut rng) {
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
        if rng.random_bool(0.005) || (root_admins == 0 && i == people / 2 && people >= 20) {
            spec = spec.role("RootAdmin");
            root_admins += 1;
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

        let user_created = shift(now, -days(rng.random_range(1.0..1100.0)));
        let Ok(user) = site.add_user(&spec, user_created) else {
            continue;
        };

        let pick = rng.random::<f64>();
        let kind = if pick < 0.45 {
            SimAccessType::Professional
        } else if pick < 0.90 {
            SimAccessType::Analyzer
        } else if pick < 0.94 {
            SimAccessType::User
        } else {
            login_users.push(user);
            continue;
        };

        let bucket = rng.random::<f64>();
        let (last_used, created, quarantined) = if bucket < 0.55 {
            let used = shift(now, -days(rng.random_range(0.0..30.0)));
            (
                LastUsed::At(used),
                created_before(&mut rng, used, user_created),
                false,
            )
        } else if bucket < 0.75 {
            let used = shift(now, -days(rng.random_range(30.0..90.0)));
            (
                LastUsed::At(used),
                created_before(&mut rng, used, user_created),
                false,
            )
        } else if bucket < 0.85 {
            let used = shift(now, -days(rng.random_range(90.0..365.0)));
            (
                LastUsed::At(used),
                created_before(&mut rng, used, user_created),
                false,
            )
        } else if bucket < 0.91 {
            let used = shift(now, -days(rng.random_range(365.0..730.0)));
            (
                LastUsed::At(used),
                created_before(&mut rng, used, user_created),
                false,
            )
        } else if bucket < 0.98 {
            let age = if rng.random_bool(0.25) {
                rng.random_range(0.0..14.0)
            } else {
                rng.random_range(14.0..365.0)
            };
            (LastUsed::Never, shift(now, -days(age)), false)
        } else {
            // Deallocated within the last week while in use: waiting out the quarantine.
            let used = shift(now, -days(rng.random_range(0.5..6.5)));
            (
                LastUsed::At(used),
                created_before(&mut rng, used, user_created),
                true,
            )
        };
        let last_used = match last_used {
            LastUsed::At(t) => LastUsed::At(millis(t)),
            other => other,
        };
        let modified = match last_used {
            LastUsed::At(t) => t,
            _ => created,
        };
        let id = site.new_id();
        let _ = site.insert_allocation(AllocRec {
            id,
            kind,
            user: Some(user),
            deleted_user: None,
            created,
            modified,
            modified_by: "INTERNAL\\sa_repository".to_string(),
            quarantine_end: match (&last_used, quarantined) {
                (LastUsed::At(t), true) => Some(shift(*t, QUARANTINE)),
                _ => None,
            },
            last_used,
            excess: false,
            quarantined,
        });
    }

    // Login access: two groups, with recent usage by the people who hold no seat.
    let mut login_passes = 0u32;
    if users >= 10 {
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
            if site.add_login_usage(group, *user, start, latest).is_ok() {
                login_passes += 1;
            }
        }
    }

    let summary = site.summary();
    let held = |t: super::site::TypeSummary| {
        u32::try_from(t.allocated + t.quarantined).unwrap_or(u32::MAX)
    };
    let free = |held: u32, rng: &mut StdRng| held / 20 + rng.random_range(1..=5);
    let professional = held(summary.professional);
    let analyzer = held(summary.analyzer);
    let user_passes = held(summary.user);
    let login_tokens = if users >= 10 { 15 } else { 0 };
    let _ = login_passes;
    site.seats = SeatTotals {
        professional: professional + free(professional, &mut rng),
        analyzer: analyzer + free(analyzer, &mut rng),
        tokens: user_passes + login_tokens + free(user_passes, &mut rng),
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
