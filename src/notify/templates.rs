//! The e-mail templates: the product's defaults, each replaceable by a site's own (a ConfigMap or a Secret key of
//! the same name). Jinja syntax (minijinja); HTML templates escape what they insert.

use std::collections::BTreeMap;

use minijinja::Environment;
use serde::Serialize;

use super::NotifyError;
use super::bounds;
use crate::model::Rule;

/// The templates, by name, with the product's defaults.
const DEFAULTS: [(&str, &str); 6] = [
    ("notice.subject", include_str!("templates/notice.subject")),
    ("notice.txt", include_str!("templates/notice.txt")),
    ("notice.html", include_str!("templates/notice.html")),
    ("summary.subject", include_str!("templates/summary.subject")),
    ("summary.txt", include_str!("templates/summary.txt")),
    ("summary.html", include_str!("templates/summary.html")),
];

/// Template steps a rendering may take: a site's template cannot keep a run busy.
const FUEL: u64 = 200_000;

/// A rendered message: subject, plain text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The templates a policy mails with.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The defaults, with `overrides` (name to source) in their place; other names are ignored, so a ConfigMap
    /// may hold more. A template that does not compile, or uses what could build without bound (see
    /// [`bounds`]), is an error naming it.
    pub fn new(overrides: &BTreeMap<String, String>) -> Result<Self, NotifyError> {
        let mut env = bounds::environment(FUEL);
        for (name, default) in DEFAULTS {
            let source = overrides
                .get(name)
                .cloned()
                .unwrap_or_else(|| default.to_string());
            if let Some(why) = bounds::refusal(&source) {
                return Err(NotifyError::Template {
                    name: name.to_string(),
                    detail: why,
                });
            }
            env.add_template_owned(name, source)
                .map_err(|e| NotifyError::Template {
                    name: name.to_string(),
                    detail: e.to_string(),
                })?;
        }
        Ok(Self { env })
    }

    /// Render `kind` ("notice" or "summary") with `context`.
    pub fn render(&self, kind: &str, context: &impl Serialize) -> Result<Rendered, NotifyError> {
        let render = |part: &str| {
            let name = format!("{kind}.{part}");
            let mut out = bounds::CappedOutput::default();
            let rendered = bounds::with_budget(|| {
                self.env
                    .get_template(&name)
                    .and_then(|t| t.render_captured_to(context, &mut out).map(|_| ()))
            });
            let detail = match rendered {
                Ok(()) => return Ok(String::from_utf8_lossy(&out.bytes).into_owned()),
                Err(_) if out.overflowed => format!(
                    "renders to more than {} MiB (the limit)",
                    bounds::OUTPUT_LIMIT >> 20
                ),
                Err(e) => e.to_string(),
            };
            Err(NotifyError::Template { name, detail })
        };
        // A subject is one line, whatever the data put in it.
        let subject = render("subject")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Rendered {
            subject,
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

/// What a notice template is given.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeVars {
    pub user: UserVars,
    /// idle, leaver, redundant or right-size: the rule that takes (or, for right-size, changes) the seat, and so
    /// what (if anything) keeps it.
    pub rule: Rule,
    /// For a leaver, the state that makes them one ("blocked in the QMC", "removed from the user directory",
    /// "inactive in the QMC"); empty otherwise.
    pub user_state: String,
    /// professional, analyzer or user.
    pub access_type: String,
    /// The day of last use, or "never".
    pub last_used: String,
    /// Days without use.
    pub idle_days: Option<i64>,
    /// The first day the seat may go, as a date.
    pub reclaim_after: String,
    /// The policy's name.
    pub policy: String,
    /// Whom to ask: the administrators' addresses, or "your Qlik Sense administrators".
    pub contact: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserVars {
    /// The display name Qlik knows.
    pub name: String,
    /// DIRECTORY\userId.
    pub id: String,
    pub email: String,
}

/// What a summary template is given.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryVars {
    pub policy: String,
    pub run_id: String,
    pub result: String,
    pub dry_run: bool,
    pub message: String,
    /// The first seats of each kind (at most 200 each): for the lines, never for the counts.
    pub reclaimed: Vec<SeatLine>,
    /// Professional seats moved to Analyzer (or, in a dry run, that would move).
    pub moved: Vec<SeatLine>,
    pub warned: Vec<SeatLine>,
    pub failed: Vec<SeatLine>,
    /// How many seats of each kind the run had, from its totals, whatever the lists hold.
    pub counts: SummaryCounts,
    /// Of each kind, the seats its list leaves out.
    pub not_listed: SummaryCounts,
    /// Seats not listed, all kinds together.
    pub omitted: usize,
}

/// Seats by kind: reclaimed (or, in a dry run, that would be), moved to Analyzer (or would be), warned, failed
/// (moves not made among them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SummaryCounts {
    pub reclaimed: u64,
    pub moved: u64,
    pub warned: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeatLine {
    pub user: String,
    pub access_type: String,
    pub last_used: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> NoticeVars {
        NoticeVars {
            user: UserVars {
                name: "Ann <b>Lee</b>".into(),
                id: "CORP\\ann".into(),
                email: "ann@example.com".into(),
            },
            rule: Rule::Idle,
            user_state: String::new(),
            access_type: "professional".into(),
            last_used: "2026-09-01".into(),
            idle_days: Some(91),
            reclaim_after: "2026-12-15".into(),
            policy: "prod-site".into(),
            contact: "qlik-admins@example.com".into(),
        }
    }

    #[test]
    fn the_default_notice_says_what_when_and_how_to_keep_the_seat() {
        let rendered = Templates::new(&BTreeMap::new())
            .expect("defaults compile")
            .render("notice", &notice())
            .expect("renders");
        assert_eq!(
            rendered.subject,
            "Your Qlik Sense professional access will be taken back on 2026-12-15"
        );
        for part in [
            "2026-09-01",
            "2026-12-15",
            "log in",
            "qlik-admins@example.com",
        ] {
            assert!(rendered.text.contains(part), "{part}: {}", rendered.text);
        }
        assert!(rendered.text.contains("Hello Ann <b>Lee</b>"));
        // HTML escapes what it inserts.
        assert!(
            rendered.html.contains("Ann &lt;b&gt;Lee&lt;&#x2f;b&gt;"),
            "{}",
            rendered.html
        );
    }

    /// Each rule's notice says what keeps the seat: a login for an idle seat; nothing a user does for a leaver's
    /// seat or a redundant Analyzer seat, which must not be told that using it cancels the notice.
    /// A seat never used is not "unused since never".
    #[test]
    fn the_default_notice_of_a_seat_never_used_says_so() {
        let mut context = notice();
        context.last_used = "never".into();
        let rendered = Templates::new(&BTreeMap::new())
            .expect("defaults compile")
            .render("notice", &context)
            .expect("renders");
        for text in [&rendered.text, &rendered.html] {
            assert!(text.contains("since it was given to you"), "{text}");
            assert!(!text.contains("since never"), "{text}");
        }
    }

    #[test]
    fn the_default_notice_says_what_keeps_the_seat_under_each_rule() {
        let templates = Templates::new(&BTreeMap::new()).expect("defaults compile");
        let render = |rule, access_type: &str, user_state: &str| {
            let mut context = notice();
            context.rule = rule;
            context.access_type = access_type.into();
            context.user_state = user_state.into();
            templates.render("notice", &context).expect("renders")
        };
        let idle = render(Rule::Idle, "professional", "");
        for part in [&idle.text, &idle.html] {
            assert!(part.contains("any use cancels this notice"), "{part}");
            assert!(part.contains("since 2026-09-01"), "{part}");
        }

        let redundant = render(Rule::Redundant, "analyzer", "");
        assert_eq!(
            redundant.subject,
            "Your Qlik Sense analyzer access will be taken back on 2026-12-15; you keep your professional access"
        );
        let leaver = render(Rule::Leaver, "professional", "blocked in the QMC");
        assert_eq!(
            leaver.subject,
            "Your Qlik Sense professional access will be taken back on 2026-12-15"
        );
        for part in [&redundant.text, &redundant.html] {
            assert!(part.contains("you keep your professional access"), "{part}");
            assert!(
                part.contains("logging in does not change this notice"),
                "{part}"
            );
        }
        for part in [&leaver.text, &leaver.html] {
            assert!(part.contains("account is blocked in the QMC"), "{part}");
            assert!(
                part.contains("If this is a mistake, ask qlik-admins@example.com"),
                "{part}"
            );
        }
        let moving = render(Rule::RightSize, "professional", "");
        assert_eq!(
            moving.subject,
            "Your Qlik Sense access changes to analyzer on 2026-12-15"
        );
        for part in [&moving.text, &moving.html] {
            assert!(
                part.contains("private sheets stay but can no longer be edited or published"),
                "{part}"
            );
            assert!(
                part.contains("create or edit a sheet before then"),
                "{part}"
            );
        }
        for part in [
            &redundant.text,
            &redundant.html,
            &leaver.text,
            &leaver.html,
            &moving.text,
            &moving.html,
        ] {
            assert!(!part.contains("cancels"), "{part}");
            assert!(!part.contains("To keep it, log in"), "{part}");
            assert!(!part.contains("have not used"), "{part}");
            assert!(part.contains("2026-12-15"), "{part}");
        }
    }

    #[test]
    fn a_site_template_replaces_one_default_and_a_broken_one_is_named() {
        let overrides = BTreeMap::from([(
            "notice.txt".to_string(),
            "Dear {{ user.name }}: log in by {{ reclaim_after }}.".to_string(),
        )]);
        let rendered = Templates::new(&overrides)
            .expect("compiles")
            .render("notice", &notice())
            .expect("renders");
        assert_eq!(rendered.text, "Dear Ann <b>Lee</b>: log in by 2026-12-15.");
        assert!(
            rendered.html.contains("taken back"),
            "the HTML default stays"
        );
        let broken = BTreeMap::from([("summary.html".to_string(), "{% for %}".to_string())]);
        let Err(e) = Templates::new(&broken) else {
            panic!("a broken template compiled")
        };
        assert!(e.to_string().contains("summary.html"), "{e}");
    }

    #[test]
    fn a_template_that_never_ends_is_stopped() {
        let overrides = BTreeMap::from([(
            "notice.txt".to_string(),
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
                .to_string(),
        )]);
        let templates = Templates::new(&overrides).expect("compiles");
        assert!(templates.render("notice", &notice()).is_err());
    }

    #[test]
    fn the_default_summary_lists_each_kind() {
        let line = |user: &str| SeatLine {
            user: user.into(),
            access_type: "analyzer".into(),
            last_used: "never".into(),
            reason: "never used".into(),
        };
        let summary = SummaryVars {
            policy: "prod-site".into(),
            run_id: "r1".into(),
            result: "Succeeded".into(),
            dry_run: false,
            message: "reclaimed 1 of 1 candidate seats".into(),
            reclaimed: vec![line("CORP\\a")],
            moved: Vec::new(),
            warned: vec![line("CORP\\b"), line("CORP\\c")],
            failed: Vec::new(),
            counts: SummaryCounts {
                reclaimed: 1,
                moved: 0,
                warned: 2,
                failed: 0,
            },
            not_listed: SummaryCounts::default(),
            omitted: 0,
        };
        let rendered = Templates::new(&BTreeMap::new())
            .expect("defaults")
            .render("summary", &summary)
            .expect("renders");
        assert_eq!(
            rendered.subject,
            "Qlik licences, prod-site: Succeeded: 1 reclaimed, 2 warned, 0 failed"
        );
        assert!(rendered.text.contains("Reclaimed (1)"), "{}", rendered.text);
        assert!(rendered.text.contains("Warned (2)"), "{}", rendered.text);
        assert!(!rendered.text.contains("Failed ("), "{}", rendered.text);
        assert!(
            rendered.html.contains("<h3>Warned (2)</h3>"),
            "{}",
            rendered.html
        );
    }
}
