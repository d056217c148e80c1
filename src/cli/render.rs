//! Renders a run report for people (table), programs (JSON) and spreadsheets (CSV).

use std::fmt::Write as _;

use crate::policy::RunResult;
use crate::record::RunRecord;
use crate::run::{Entry, Outcome, RunReport};

/// Output formats of `run` and `demo`. JSON is the run's record (as a `LicenseCleanupRun` keeps it); CSV lists
/// every seat the run read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
    Csv,
}

/// Write the report to `out`. JSON and CSV are written as they are produced, so that a report of a large
/// site is never held twice in memory.
pub(crate) fn write(
    report: &RunReport,
    format: Format,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    match format {
        Format::Table => out.write_all(table(report).as_bytes()),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &RunRecord::of(report))?;
            out.write_all(b"\n")
        }
        Format::Csv => csv_to(report, out),
    }
}

pub(crate) fn render(report: &RunReport, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&RunRecord::of(report))
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            s.push('\n');
            s
        }
        Format::Csv => csv(report),
    }
}

/// A plain-text table with columns sized to their content.
struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// Columns aligned right (numbers).
    right: Vec<usize>,
}

impl Table {
    fn new(header: Vec<&'static str>) -> Self {
        Self {
            header,
            rows: Vec::new(),
            right: Vec::new(),
        }
    }

    fn right_align(mut self, columns: &[usize]) -> Self {
        self.right = columns.to_vec();
        self
    }

    fn render(&self, out: &mut String) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>, out: &mut String| {
            let mut text = String::from("  ");
            let last = cells.len().saturating_sub(1);
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if self.right.contains(&i) {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    if i != last {
                        text.push_str(&" ".repeat(pad));
                    }
                }
                if i != last {
                    text.push_str("  ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(self.header.clone(), out);
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect(), out);
        }
    }
}

fn short_date(last_used: &str) -> String {
    // ISO dates are shown to the day; "never" and unreadable text as they are.
    if last_used.len() >= 10 && last_used.as_bytes()[4] == b'-' {
        last_used[..10].to_string()
    } else {
        last_used.to_string()
    }
}

fn idle(entry: &Entry) -> String {
    entry
        .idle_days
        .map(|d| format!("{d}d"))
        .unwrap_or_else(|| "-".into())
}

fn table(report: &RunReport) -> String {
    let mut out = String::new();
    let mode = if report.dry_run {
        "DRY RUN: nothing is deallocated"
    } else {
        "ENFORCING: inactive seats are deallocated"
    };
    let _ = writeln!(out, "Run {} ({mode})", report.id);
    let _ = writeln!(
        out,
        "Result: {}: {}",
        report.result.as_str(),
        report.message
    );
    let _ = writeln!(out);
    seats_table(report, &mut out);
    counts_table(report, &mut out);
    decision_tables(report, &mut out);
    let _ = writeln!(
        out,
        "Result: {}: {}",
        report.result.as_str(),
        report.message
    );
    if report.dry_run && report.result == RunResult::Succeeded && report.totals.reclaimed > 0 {
        let _ = writeln!(
            out,
            "Nothing was deallocated. To reclaim these seats, set spec.dryRun: false in the policy."
        );
    }
    out
}

/// The site's seat counters per access type; the excess (seats beyond the licence) when there is any.
fn seats_table(report: &RunReport, out: &mut String) {
    let excess = report.seats.values().any(|s| s.excess > 0);
    let mut header = vec![
        "ACCESS TYPE",
        "TOTAL",
        "ALLOCATED",
        "AVAILABLE",
        "QUARANTINED",
    ];
    if excess {
        header.push("EXCESS");
    }
    let rows = report.seats.iter().map(|(access_type, s)| {
        let mut counts = vec![s.total, s.allocated, s.available, s.quarantined];
        if excess {
            counts.push(s.excess);
        }
        (access_type.to_string(), counts)
    });
    counter_table("Seats on the site", &header, rows, out);
}

/// What the run did per access type; how many seats the leaver and redundant rules took when they took any.
fn counts_table(report: &RunReport, out: &mut String) {
    let reclaimed = if report.dry_run {
        "WOULD RECLAIM"
    } else {
        "RECLAIMED"
    };
    // LISTED, not ALLOCATED: QRS lists quarantined seats as allocations, and the seats table above counts those
    // apart, so the two columns would disagree under one name.
    let mut header = vec![
        "ACCESS TYPE",
        "LISTED",
        "CANDIDATES",
        reclaimed,
        "FAILED",
        "EXCLUDED",
    ];
    let by_rule = report.totals.leavers + report.totals.redundant > 0;
    if by_rule {
        header.extend(["OF THEM LEAVERS", "REDUNDANT"]);
    }
    let moves = report.totals.moved > 0;
    if moves {
        header.push(if report.dry_run {
            "WOULD MOVE TO ANALYZER"
        } else {
            "MOVED TO ANALYZER"
        });
    }
    let rows = report.per_access_type.iter().map(|(access_type, c)| {
        let mut counts = vec![c.allocated, c.candidates, c.reclaimed, c.failed, c.excluded];
        if by_rule {
            counts.extend([c.leavers, c.redundant]);
        }
        if moves {
            counts.push(c.moved);
        }
        (access_type.to_string(), counts)
    });
    counter_table("This run", &header, rows, out);
}

/// A titled table of counters, one row per access type, the numbers right-aligned; nothing when there are no rows.
fn counter_table(
    title: &str,
    header: &[&'static str],
    rows: impl Iterator<Item = (String, Vec<u64>)>,
    out: &mut String,
) {
    let mut t = Table::new(header.to_vec()).right_align(&(1..header.len()).collect::<Vec<_>>());
    for (name, counts) in rows {
        t.rows.push(
            std::iter::once(name)
                .chain(counts.iter().map(u64::to_string))
                .collect(),
        );
    }
    if t.rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    t.render(out);
    let _ = writeln!(out);
}

/// One table per kind of outcome: reclaimed (or would be), moves to Analyzer, failed, deferred, kept.
fn decision_tables(report: &RunReport, out: &mut String) {
    let of = |outcomes: &[Outcome]| -> Vec<&Entry> {
        report
            .decisions
            .iter()
            .filter(|e| outcomes.contains(&e.outcome))
            .collect()
    };
    let reclaimed = of(&[
        Outcome::Reclaimed,
        Outcome::AlreadyGone,
        Outcome::WouldReclaim,
    ]);
    let verb = if report.dry_run {
        "Would reclaim"
    } else {
        "Reclaimed"
    };
    let title = format!("{verb} ({}), longest idle first", reclaimed.len());
    decision_table(title, &reclaimed, out, true);
    // The other tables: their title, their outcomes, and whether the seats' idle days mean something there.
    let tables: [(&str, &[Outcome], bool); 6] = [
        ("Would move to Analyzer", &[Outcome::WouldMove], false),
        ("Moved to Analyzer", &[Outcome::Moved], false),
        (
            "Not moved to Analyzer",
            &[Outcome::NoAnalyzerSeat, Outcome::MoveUnfinished],
            false,
        ),
        ("Failed", &[Outcome::Failed, Outcome::Unconfirmed], true),
        ("Not reclaimed this run", &[Outcome::Deferred], true),
        ("Kept", &[Outcome::Kept], false),
    ];
    for (title, outcomes, with_idle) in tables {
        let entries = of(outcomes);
        decision_table(
            format!("{title} ({})", entries.len()),
            &entries,
            out,
            with_idle,
        );
    }
    let listed = report.decisions.len() as u64;
    if report.totals.allocated > listed {
        let _ = writeln!(
            out,
            "The other {} allocations were used within their threshold: kept, and not listed.",
            report.totals.allocated - listed
        );
        let _ = writeln!(out);
    }
}

fn decision_table(title: String, entries: &[&Entry], out: &mut String, with_idle: bool) {
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}");
    let mut t = if with_idle {
        Table::new(vec![
            "USER",
            "NAME",
            "ACCESS TYPE",
            "LAST USED",
            "IDLE",
            "REASON",
        ])
        .right_align(&[4])
    } else {
        Table::new(vec!["USER", "NAME", "ACCESS TYPE", "LAST USED", "REASON"])
    };
    for e in entries {
        let mut reason = e.reason.clone();
        if let Some(error) = &e.error {
            let _ = write!(reason, ": {error}");
        }
        let mut row = vec![
            e.user.clone(),
            e.user_name.clone(),
            e.access_type.to_string(),
            short_date(&e.last_used),
        ];
        if with_idle {
            row.push(idle(e));
        }
        row.push(reason);
        t.rows.push(row);
    }
    t.render(out);
    let _ = writeln!(out);
}

fn csv(report: &RunReport) -> String {
    let mut bytes = Vec::new();
    let _ = csv_to(report, &mut bytes);
    String::from_utf8(bytes).unwrap_or_default()
}

fn csv_to(report: &RunReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer
        .write_record([
            "user",
            "user_name",
            "access_type",
            "allocation_id",
            "last_used",
            "idle_days",
            "outcome",
            "reason_code",
            "reason",
            "error",
            "dry_run",
            "run_id",
        ])
        .map_err(std::io::Error::other)?;
    for e in &report.decisions {
        writer
            .write_record([
                e.user.as_str(),
                e.user_name.as_str(),
                e.access_type.key(),
                e.allocation_id.as_str(),
                e.last_used.as_str(),
                &e.idle_days.map(|d| d.to_string()).unwrap_or_default(),
                e.outcome.as_str(),
                e.reason_code,
                e.reason.as_str(),
                e.error.as_deref().unwrap_or(""),
                if report.dry_run { "true" } else { "false" },
                report.id.as_str(),
            ])
            .map_err(std::io::Error::other)?;
    }
    writer.flush()
}
