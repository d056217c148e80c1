//! qlik-license-reclaimer: takes Qlik Sense Enterprise licences back from users who no longer use them.
//!
//! Layout: the pure engine ([`model`], [`plan`], [`notice`], `schedule`) is the `reclaimer-engine` crate, so the
//! compiler keeps I/O out of it; it is re-exported here under the same names. [`qrs`] talks to Qlik; [`policy`]
//! is the edge where the resource becomes the program's own values; [`run`] ties one run together for every entry
//! point; the Kubernetes side (`k8s`) and the command line ([`cli`]) call it. The QRS simulator is the
//! `qrs-simulator` crate. docs/architecture.md draws the layers.
//!
//! Only what the tests and benchmarks use is public. The crate-private modules warn on a `pub` that reaches no
//! further than the crate (`unreachable_pub`), so their items say `pub(crate)`.

pub(crate) use reclaimer_engine::schedule;
pub use reclaimer_engine::{authoring, model, notice, plan};

pub mod brake;
pub mod cli;
pub mod credentials;
pub mod demo;
pub mod files;
#[warn(unreachable_pub)]
pub(crate) mod k8s;
pub mod notify;
pub mod policy;
pub mod qrs;
pub mod record;
pub mod report;
pub mod restore;
pub mod run;
#[warn(unreachable_pub)]
pub(crate) mod shutdown;

/// Helpers the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod testing {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Counts what each thread has allocated and not freed, and the most at once, so a test can tell what one
    /// piece of work cost (a rendering, a parsed answer) whatever else runs in parallel.
    struct Counting;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn note(delta: isize) {
        let _ = LIVE.try_with(|live| {
            let now = live.get() + delta;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    // SAFETY: every call is passed to the system allocator unchanged; only counters on the side are touched
    // (thread-locals without destructors, which never allocate).
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                note(layout.size() as isize);
            }
            p
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            note(-(layout.size() as isize));
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                note(new_size as isize - layout.size() as isize);
            }
            p
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// The most `f` had allocated at once on this thread, beyond what was allocated before it.
    pub(crate) fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let before = LIVE.with(Cell::get);
        PEAK.with(|peak| peak.set(before));
        let out = f();
        let peak = PEAK.with(Cell::get) - before;
        (out, usize::try_from(peak).unwrap_or(0))
    }

    /// A fresh self-signed certificate and its key, keyed as a policy's Secret holds them (`client.pem`,
    /// `client_key.pem`, `root.pem`); and the key's PEM.
    pub(crate) fn credential_entries() -> (std::collections::BTreeMap<String, Vec<u8>>, String) {
        use crate::credentials::{CLIENT_CERT_KEY, CLIENT_KEY_KEY, ROOT_CERT_KEY};
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        let key_pem = key.serialize_pem();
        let entries = [
            (CLIENT_CERT_KEY, cert.pem()),
            (CLIENT_KEY_KEY, key_pem.clone()),
            (ROOT_CERT_KEY, cert.pem()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_bytes()))
        .collect();
        (entries, key_pem)
    }

    /// A report's line for the Professional seat of `user`, idle 304 days, with `outcome`.
    pub(crate) fn entry(user: &str, outcome: crate::report::Outcome) -> crate::report::Entry {
        crate::report::Entry {
            user: user.into(),
            user_name: "Someone".into(),
            access_type: crate::model::AccessType::Professional,
            allocation_id: "0f2c6d8e-1a2b-4c3d-9e8f-0123456789ab".into(),
            user_qrs_id: "5d2a7c1e-9b3f-4e6a-8c0d-1f2e3a4b5c6d".into(),
            last_used: "2026-01-31T19:44:28.951Z".into(),
            idle_days: Some(304),
            outcome,
            reason_code: "inactive",
            rule: Some(crate::model::Rule::Idle),
            reason: "not used for 304 days (threshold 90)".into(),
            error: None,
            analyzer_added: false,
            analyzer_allocation_id: None,
        }
    }

    /// The report of a run on https://qlik.example:4242 that succeeded on 2026-12-01 (`message`), with these counts
    /// and decisions.
    pub(crate) fn succeeded_report(
        message: &str,
        totals: crate::policy::TypeCounts,
        decisions: Vec<crate::report::Entry>,
    ) -> crate::report::RunReport {
        crate::report::RunReport {
            site: "https://qlik.example:4242".to_string(),
            totals,
            decisions,
            ..crate::report::RunReport::new(
                "20261201T090000Z-abc123".into(),
                ts("2026-12-01T09:00:00Z"),
                ts("2026-12-01T09:00:05Z"),
                false,
                crate::policy::RunResult::Succeeded,
                message.into(),
            )
        }
    }

    /// An instant written as RFC 3339, for tests.
    pub(crate) fn ts(text: &str) -> jiff::Timestamp {
        text.parse().expect("a valid RFC 3339 instant")
    }
}
