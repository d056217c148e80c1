//! The chart's Grafana dashboard and Prometheus alerts against the operator they watch:
//! - every `qlik_reclaimer_*` name they use is one the controller really exports on /metrics, and every label
//!   value they select on has a series there, after runs that succeed, reclaim, only report, fail and abort;
//! - the dashboard has its panels, each with a query, filtered by the namespace and policy variables;
//! - every alert is actionable and has a unit test; promtool (`scripts/prometheus.sh`, Debian's package) checks the
//!   rules, runs those unit tests (`tests/promtool/alerts_test.yaml`) and parses every dashboard query;
//! - a real Prometheus scrapes the controller through its runs, and every dashboard query (variables filled in as
//!   Grafana fills them) and every alert executes on it; the panels an administrator opens first show data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use libtest_mimic::Failed;

use crate::prometheus::{PrometheusProcess, as_grafana_sends_it};
use qlik_license_reclaimer::policy::{LicenseCleanupPolicy, RunResult};
use qrs_simulator::{Fault, FaultRule};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::control_plane::ControlPlane;
use crate::operator::{
    ControllerProcess, create_policy, ensure_installed, known_site_namespace, next_run,
    wait_metrics_up,
};
use crate::tools::{promtool, repo_path};
use crate::{TestResult, register, run, support};

const DASHBOARD: &str = "charts/qlik-license-reclaimer/dashboards/qlik-license-reclaimer.json";
const ALERTS: &str = "charts/qlik-license-reclaimer/files/alerts.yaml";
const ALERT_TESTS: &str = "tests/promtool/alerts_test.yaml";
const PREFIX: &str = "qlik_reclaimer_";

/// Panels the dashboard must have (by title).
const PANELS: &[&str] = &[
    "Reclaimed seats",
    "Seats by state",
    "Seats available",
    "Candidates waiting",
    "Returned seats",
    "Pending notices",
    "Notifications",
    "Dry-run findings",
    "Dry run",
    "Run results",
    "Run duration",
    "QRS errors (5xx and no answer)",
    "QRS client errors (4xx)",
    "Time since last success",
    "Next run",
    "Policy ready",
];

/// Alerts the rules file must define; each needs a unit test that fires it and one where it stays quiet.
const ALERT_NAMES: &[&str] = &[
    "QlikReclaimerNoRecentSuccess",
    "QlikReclaimerRunsFailing",
    "QlikReclaimerRunAborted",
    "QlikReclaimerPolicyNotReady",
    "QlikReclaimerSeatsNearlyExhausted",
    "QlikReclaimerSiteOverAllocated",
    "QlikReclaimerLeaverSurge",
    "QlikReclaimerSeatsReturning",
    "QlikReclaimerNotificationsFailing",
    "QlikReclaimerQrsErrors",
    "QlikReclaimerReclaimFailures",
    "QlikReclaimerMetricsAbsent",
];

fn read(path: &str) -> Result<String, Failed> {
    std::fs::read_to_string(repo_path(path)).map_err(|e| format!("{path}: {e}").into())
}

fn dashboard() -> Result<Json, Failed> {
    serde_json::from_str(&read(DASHBOARD)?).map_err(|e| format!("{DASHBOARD}: {e}").into())
}

fn yaml(path: &str) -> Result<Yaml, Failed> {
    serde_yaml::from_str(&read(path)?).map_err(|e| format!("{path}: {e}").into())
}

/// The dashboard's queries: every panel target's `expr` and every query variable's query.
fn dashboard_queries(dashboard: &Json) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push(expr.to_string());
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            out.push(query.to_string());
        }
    }
    out
}

/// Every alerting rule of the rules file, as YAML mappings.
fn alert_rules(rules: &Yaml) -> Vec<&Yaml> {
    rules["groups"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().into_iter().flatten())
        .filter(|r| r["alert"].is_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Names and selectors in PromQL, and the Prometheus text exposition
// ---------------------------------------------------------------------------------------------------------

/// Every `qlik_reclaimer_[a-z_]+` identifier in `text` (not part of a longer name such as a recording rule's).
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(PREFIX) {
        let start = from + found;
        let mut end = start + PREFIX.len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let inside_a_name = start > 0
            && (bytes[start - 1].is_ascii_alphanumeric()
                || matches!(bytes[start - 1], b'_' | b':'));
        if !inside_a_name && end > start + PREFIX.len() {
            out.insert(text[start..end].to_string());
        }
        from = end;
    }
    out
}

/// One label matcher of a selector: `name op "value"`.
#[derive(Debug)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// Reads a double-quoted string starting at `chars[*i]` (the opening quote); leaves `*i` after the closing one.
fn quoted(chars: &[char], i: &mut usize) -> Option<String> {
    if chars.get(*i) != Some(&'"') {
        return None;
    }
    *i += 1;
    let mut value = String::new();
    while let Some(&c) = chars.get(*i) {
        *i += 1;
        match c {
            '"' => return Some(value),
            '\\' => {
                let escaped = *chars.get(*i)?;
                *i += 1;
                value.push(if escaped == 'n' { '\n' } else { escaped });
            }
            c => value.push(c),
        }
    }
    None
}

/// The label matchers in `{...}` starting at `chars[*i]` (the brace); leaves `*i` after the closing brace.
fn matchers(chars: &[char], i: &mut usize) -> Result<Vec<Matcher>, String> {
    let context = |at: usize| chars[at..].iter().take(60).collect::<String>();
    let mut out = Vec::new();
    *i += 1;
    loop {
        while chars
            .get(*i)
            .is_some_and(|c| c.is_whitespace() || *c == ',')
        {
            *i += 1;
        }
        match chars.get(*i) {
            Some('}') => {
                *i += 1;
                return Ok(out);
            }
            None => return Err("unterminated selector".into()),
            _ => {}
        }
        let start = *i;
        while chars
            .get(*i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            *i += 1;
        }
        let label: String = chars[start..*i].iter().collect();
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
        let op_start = *i;
        while chars.get(*i).is_some_and(|c| matches!(c, '=' | '!' | '~')) {
            *i += 1;
        }
        let op: String = chars[op_start..*i].iter().collect();
        while chars.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
        if label.is_empty() || !matches!(op.as_str(), "=" | "!=" | "=~" | "!~") {
            return Err(format!(
                "cannot read a label matcher at {:?}",
                context(start)
            ));
        }
        let value =
            quoted(chars, i).ok_or_else(|| format!("no quoted value at {:?}", context(start)))?;
        out.push(Matcher { label, op, value });
    }
}

/// Every `qlik_reclaimer_*{...}` selector in a PromQL expression: (metric name, matchers).
fn selectors(expr: &str) -> Result<Vec<(String, Vec<Matcher>)>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let text: String = chars.iter().collect();
    let mut out = Vec::new();
    for name in metric_names(&text) {
        let pattern: Vec<char> = name.chars().collect();
        let mut i = 0;
        while i + pattern.len() <= chars.len() {
            let at_name = chars[i..i + pattern.len()] == pattern[..]
                && (i == 0 || !(chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_'))
                && chars
                    .get(i + pattern.len())
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == '_'));
            if at_name && chars.get(i + pattern.len()) == Some(&'{') {
                let mut j = i + pattern.len();
                let found = matchers(&chars, &mut j).map_err(|e| format!("{name}: {e}"))?;
                out.push((name.clone(), found));
                i = j;
            } else {
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Whether `pattern`, a fully anchored regular expression made only of literal alternatives where `.` is any
/// character (such as `5..|error`), matches `value`. `None` for any other kind of pattern.
fn simple_regex_matches(pattern: &str, value: &str) -> Option<bool> {
    if !pattern
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '|' | '-' | '/'))
    {
        return None;
    }
    Some(pattern.split('|').any(|alternative| {
        alternative.chars().count() == value.chars().count()
            && alternative
                .chars()
                .zip(value.chars())
                .all(|(p, v)| p == '.' || p == v)
    }))
}

/// The samples and metric types of a Prometheus text exposition.
#[derive(Default)]
struct Exposition {
    /// Family name to type (`counter`, `gauge`, `histogram`, ...).
    types: BTreeMap<String, String>,
    /// Sample name to the label sets of its samples.
    samples: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

impl Exposition {
    fn parse(text: &str) -> Result<Self, String> {
        let mut out = Exposition::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    out.types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let chars: Vec<char> = line.chars().collect();
            let name_end = chars
                .iter()
                .position(|c| *c == '{' || c.is_whitespace())
                .ok_or_else(|| format!("a sample without a value: {line}"))?;
            let name: String = chars[..name_end].iter().collect();
            let mut labels = BTreeMap::new();
            if chars[name_end] == '{' {
                let mut i = name_end;
                for m in matchers(&chars, &mut i).map_err(|e| format!("{e} in {line}"))? {
                    labels.insert(m.label, m.value);
                }
            }
            out.samples.entry(name).or_default().push(labels);
        }
        Ok(out)
    }

    /// Why `name` (as a query uses it) is not exported, if it is not.
    fn missing(&self, name: &str) -> Option<String> {
        if !self.samples.contains_key(name) {
            return Some(format!("{name} has no sample on /metrics"));
        }
        if self.types.contains_key(name) {
            return None;
        }
        // A histogram's series: only where the family really is a histogram.
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(family) = name.strip_suffix(suffix)
                && self.types.get(family).map(String::as_str) != Some("histogram")
            {
                return Some(format!(
                    "{name}: /metrics has no histogram {family} (type {:?})",
                    self.types.get(family)
                ));
            }
        }
        None
    }

    /// Why a selector matches no series on /metrics, if it does not.
    fn unmatched(&self, name: &str, matchers: &[Matcher]) -> Option<String> {
        let series = self.samples.get(name)?;
        for m in matchers {
            if !series.iter().any(|s| s.contains_key(&m.label)) {
                let known: BTreeSet<&String> = series.iter().flat_map(|s| s.keys()).collect();
                return Some(format!(
                    "{name} has no label {:?} (labels: {known:?})",
                    m.label
                ));
            }
            // Dashboard variables ($namespace) and negative matchers select nothing in particular.
            if m.value.contains('$') || m.op.starts_with('!') {
                continue;
            }
            let values: BTreeSet<&String> = series.iter().filter_map(|s| s.get(&m.label)).collect();
            let found = if m.op == "=" {
                values.contains(&m.value)
            } else if simple_regex_matches(&m.value, "").is_some() {
                values
                    .iter()
                    .any(|v| simple_regex_matches(&m.value, v) == Some(true))
            } else {
                // A regular expression beyond literals and `.`: not checked here.
                continue;
            };
            if !found {
                return Some(format!(
                    "no {name} series has {}{}{:?} (values: {values:?})",
                    m.label, m.op, m.value
                ));
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

/// Runs, against the simulator, a policy of every outcome the dashboard and alerts select on, then checks every
/// metric name and label value they use against the controller's /metrics.
fn dashboard_and_alerts_use_only_exported_metrics(cp: &ControlPlane) -> TestResult {
    ensure_installed(cp)?;
    run(cp, async {
        let (admin, sim, namespace) = known_site_namespace(cp, "observability").await?;

        // Dry run: reclaimed_total{dry_run="true"}, policy_dry_run 1.
        let dry = support::dry_run_policy(&sim);
        create_policy(&admin, &namespace, "dry", dry).await?;
        // The breaker: one candidate of eight professional seats is more than 1%.
        let mut breaker = support::policy(&sim);
        breaker.limits.max_reclaim_percent = 1;
        create_policy(&admin, &namespace, "breaker", breaker).await?;
        // Nothing listens there: runs_total{result="Failed"}, qrs_requests_total{code="error"}.
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut unreachable = support::policy(&sim);
        unreachable.site.repository_url = Some(format!("https://127.0.0.1:{closed_port}"));
        create_policy(&admin, &namespace, "unreachable", unreachable).await?;
        // Enforcing: reclaimed_total{dry_run="false"}, seats, and (with the faults below) a 5xx and a 4xx.
        create_policy(&admin, &namespace, "enforce", support::policy(&sim)).await?;

        let controller = ControllerProcess::start(cp, &namespace, &[])?;
        wait_metrics_up(&controller).await?;
        // A real Prometheus scrapes the controller from before the first run, as it would in a cluster.
        let prometheus = PrometheusProcess::start(controller.metrics_port)?;
        // It has seen every policy's counters at zero before any run, as it would have in a cluster.
        prometheus
            .wait_for(
                &format!("count(qlik_reclaimer_runs_total{{namespace=\"{namespace}\"}})"),
                11.0,
            )
            .await?;
        let expected = [
            ("dry", RunResult::Succeeded),
            ("breaker", RunResult::Aborted),
            ("unreachable", RunResult::Failed),
            ("enforce", RunResult::Succeeded),
        ];
        for (name, result) in expected {
            if name == "enforce" {
                // One 503 (retried) and one 404 on a deletion (the seat counts as already gone).
                sim.inject(
                    FaultRule::always(Fault::Status(503))
                        .method("GET")
                        .path_contains("/count")
                        .times(1),
                );
                sim.inject(
                    FaultRule::always(Fault::Status(404))
                        .method("DELETE")
                        .times(1),
                );
            }
            // Each policy runs once: its first lastRun is this run's.
            let policy = next_run(&admin, &namespace, name, "observability", "a run").await?;
            let last = last_run(&policy)
                .ok_or_else(|| format!("{name}: no lastRun\n{}", controller.log()))?;
            if last.0 != result {
                return Err(format!(
                    "{name}: expected {result:?}, got {:?}: {}\n{}",
                    last.0,
                    last.1,
                    controller.log()
                )
                .into());
            }
        }

        let text = controller.metrics().await?;
        let exposition = Exposition::parse(&text)?;
        let mut problems = Vec::new();
        for (path, source) in [(DASHBOARD, read(DASHBOARD)?), (ALERTS, read(ALERTS)?)] {
            let names = metric_names(&source);
            if names.is_empty() {
                problems.push(format!("{path}: uses no {PREFIX}* metric"));
            }
            for name in names {
                if let Some(problem) = exposition.missing(&name) {
                    problems.push(format!("{path}: {problem}"));
                }
            }
        }
        let mut queries: Vec<(&str, String)> = dashboard_queries(&dashboard()?)
            .into_iter()
            .map(|q| (DASHBOARD, q))
            .collect();
        let rules = yaml(ALERTS)?;
        for rule in alert_rules(&rules) {
            queries.push((
                ALERTS,
                rule["expr"].as_str().unwrap_or_default().to_string(),
            ));
        }
        for (path, query) in &queries {
            for (name, found) in selectors(query).map_err(|e| format!("{path}: {e}"))? {
                if let Some(problem) = exposition.unmatched(&name, &found) {
                    problems.push(format!("{path}: {problem}"));
                }
            }
        }
        if !problems.is_empty() {
            return Err(format!(
                "the dashboard or the alerts do not match the operator's metrics:\n  {}\n/metrics:\n{text}",
                problems.join("\n  ")
            )
            .into());
        }
        every_query_runs_on_prometheus(&prometheus, &namespace, &queries).await
    })
}
register!(dashboard_and_alerts_use_only_exported_metrics);

/// The panels an administrator opens first: each must show data after the runs.
const FIRST_PANELS: [&str; 4] = [
    "Seats reclaimed (time range)",
    "Seats by state",
    "Run results",
    "Policy ready",
];

/// Every dashboard query (variables filled in, as Grafana sends them) and every alert expression executes on a real
/// Prometheus that scraped the controller through the runs; the first panels show data.
async fn every_query_runs_on_prometheus(
    prometheus: &PrometheusProcess,
    namespace: &str,
    queries: &[(&str, String)],
) -> TestResult {
    // Two scrapes after the enforcing run's reclaim: increase() over a minute sees it.
    prometheus
        .wait_for(
            &format!("sum(increase(qlik_reclaimer_reclaimed_total{{dry_run=\"false\", namespace=\"{namespace}\"}}[1m]))"),
            0.0,
        )
        .await?;
    let mut problems = Vec::new();
    for (path, query) in queries {
        let query = as_grafana_sends_it(query, namespace);
        if let Err(e) = prometheus.query(&query).await {
            problems.push(format!("{path}: {query}: {e}"));
        }
    }
    let dashboard = dashboard()?;
    for title in FIRST_PANELS {
        let panel = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["title"] == title)
            .ok_or_else(|| format!("no panel {title:?}"))?;
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            let query = as_grafana_sends_it(expr, namespace);
            match prometheus.query(&query).await {
                Ok(data) if data["result"].as_array().is_some_and(|r| !r.is_empty()) => {}
                Ok(data) => problems.push(format!(
                    "panel {title:?} shows no data: {query} gave {data}"
                )),
                Err(e) => problems.push(format!("panel {title:?}: {query}: {e}")),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "on a real Prometheus:\n  {}\nPrometheus log:\n{}",
            problems.join("\n  "),
            prometheus.log()
        )
        .into())
    }
}

fn last_run(policy: &LicenseCleanupPolicy) -> Option<(RunResult, String)> {
    let last = policy.status.as_ref()?.last_run.as_ref()?;
    Some((last.header.result, last.header.message.clone()))
}

/// The dashboard parses, has every panel of [`PANELS`], each with a query, and filters by its variables.
fn dashboard_has_every_panel_with_a_query(_: &ControlPlane) -> TestResult {
    let dashboard = dashboard()?;
    let mut problems = Vec::new();
    if dashboard["schemaVersion"].as_u64() != Some(39) {
        problems.push(format!(
            "schemaVersion {} (expected 39)",
            dashboard["schemaVersion"]
        ));
    }
    if dashboard["uid"].as_str().is_none_or(str::is_empty) {
        problems.push("no uid".to_string());
    }
    let variables: BTreeMap<&str, &Json> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v)))
        .collect();
    match variables.get("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => problems.push(format!(
            "no datasource variable of type prometheus: {other:?}"
        )),
    }
    for name in ["namespace", "policy"] {
        match variables.get(name) {
            Some(v)
                if v["type"] == "query"
                    && v["datasource"]["uid"] == "${datasource}"
                    && v["query"]["query"]
                        .as_str()
                        .is_some_and(|q| q.starts_with("label_values(") && q.contains(name)) => {}
            other => problems.push(format!(
                "variable {name} is not a label_values query: {other:?}"
            )),
        }
    }

    let panels = dashboard["panels"].as_array().ok_or("no panels")?;
    let mut titles = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        if !titles.insert(title) {
            problems.push(format!("two panels titled {title:?}"));
        }
        let grid = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap_or(0));
        if w == 0 || h == 0 || x + w > 24 {
            problems.push(format!("{title:?}: bad gridPos {grid}"));
        }
        for cx in x..x + w {
            for cy in y..y + h {
                if !cells.insert((cx, cy)) {
                    problems.push(format!("{title:?} overlaps another panel at ({cx}, {cy})"));
                }
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        if panel["datasource"]["uid"] != "${datasource}" {
            problems.push(format!("{title:?}: datasource is not ${{datasource}}"));
        }
        let exprs: Vec<&str> = panel["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["expr"].as_str())
            .filter(|e| !e.trim().is_empty())
            .collect();
        if exprs.is_empty() {
            problems.push(format!("{title:?} has no query"));
        }
        for expr in exprs {
            if !expr.contains("$namespace") || !expr.contains("$policy") {
                problems.push(format!(
                    "{title:?}: {expr} ignores the namespace or policy variable"
                ));
            }
            if metric_names(expr).is_empty() {
                problems.push(format!("{title:?}: {expr} uses no {PREFIX}* metric"));
            }
        }
    }
    for wanted in PANELS {
        if !titles.contains(wanted) {
            problems.push(format!("no panel titled {wanted:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{DASHBOARD}:\n  {}", problems.join("\n  ")).into())
    }
}
register!(dashboard_has_every_panel_with_a_query);

/// Units Grafana knows, of those a panel of this dashboard may use (Grafana's unit identifiers).
const UNITS: &[&str] = &[
    "none",
    "short",
    "s",
    "ms",
    "percentunit",
    "percent",
    "dateTimeFromNow",
    "dateTimeAsIso",
    "bytes",
];

/// The rules of Grafana's dashboard linter (`github.com/grafana/dashboard-linter`) that apply to a dashboard of
/// per-policy metrics, checked here because the Go module proxy this project builds from does not serve the linter
/// (docs/metrics.md, "The dashboard", says which rules are left out and why):
/// - uneditable-dashboard: a provisioned dashboard is not editable (a copy is);
/// - template-datasource-rule: a `datasource` variable of type datasource, labelled "Data source";
/// - template-on-time-change-reload-rule: query variables refresh when the time range changes;
/// - panel-title-description-rule: every panel has a title and a description;
/// - panel-units-rule: every graph, stat and gauge panel has a unit Grafana knows;
/// - target-counter-agg-rule: a counter (`_total`, or a histogram's `_bucket`, `_sum`, `_count`) is only read
///   through `increase(` or `rate(`.
///
/// Panel datasources, PromQL validity (promtool and a real Prometheus execute every query) and `$__interval` are
/// checked by the tests above.
fn dashboard_passes_the_grafana_linter_rules(_: &ControlPlane) -> TestResult {
    let dashboard = dashboard()?;
    let mut problems = Vec::new();
    if dashboard["editable"] != false {
        problems.push("uneditable-dashboard: `editable` must be false".to_string());
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = variable["name"].as_str().unwrap_or_default();
        if variable["type"] == "datasource"
            && (name != "datasource" || variable["label"] != "Data source")
        {
            problems.push(format!(
                "template-datasource-rule: the datasource variable is {name:?} labelled {}",
                variable["label"]
            ));
        }
        if variable["type"] == "query" && variable["refresh"] != 2 {
            problems.push(format!(
                "template-on-time-change-reload-rule: variable {name} has refresh {} (expected 2)",
                variable["refresh"]
            ));
        }
    }
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default();
        if panel["type"] == "row" {
            continue;
        }
        if title.trim().is_empty()
            || panel["description"]
                .as_str()
                .is_none_or(|d| d.trim().is_empty())
        {
            problems.push(format!(
                "panel-title-description-rule: {title:?} lacks a title or a description"
            ));
        }
        let kind = panel["type"].as_str().unwrap_or_default();
        if matches!(kind, "timeseries" | "stat" | "bargauge" | "gauge") {
            let unit = panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or_default();
            if !UNITS.contains(&unit) {
                problems.push(format!("panel-units-rule: {title:?} has unit {unit:?}"));
            }
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            for name in metric_names(expr) {
                if !["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.ends_with(s))
                {
                    continue;
                }
                for (at, _) in expr.match_indices(&name) {
                    let before = expr[..at].trim_end();
                    if !before.ends_with("increase(") && !before.ends_with("rate(") {
                        problems.push(format!(
                            "target-counter-agg-rule: {title:?} reads the counter {name} without increase or rate"
                        ));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{DASHBOARD}:\n  {}", problems.join("\n  ")).into())
    }
}
register!(dashboard_passes_the_grafana_linter_rules);

/// Every alert of [`ALERT_NAMES`] is there with a severity and annotations a person can act on, and
/// `tests/promtool/alerts_test.yaml` shows it firing and, at another time, not firing.
fn alerts_are_actionable_and_each_has_unit_tests(_: &ControlPlane) -> TestResult {
    let rules = yaml(ALERTS)?;
    let tests = yaml(ALERT_TESTS)?;
    let mut problems = Vec::new();
    let alerts = alert_rules(&rules);
    let names: BTreeSet<&str> = alerts.iter().filter_map(|r| r["alert"].as_str()).collect();
    let wanted: BTreeSet<&str> = ALERT_NAMES.iter().copied().collect();
    if names != wanted {
        problems.push(format!("alerts {names:?}, expected {wanted:?}"));
    }
    for rule in &alerts {
        let name = rule["alert"].as_str().unwrap_or_default();
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        if !matches!(severity, "info" | "warning" | "critical") {
            problems.push(format!("{name}: severity {severity:?}"));
        }
        let summary = rule["annotations"]["summary"].as_str().unwrap_or_default();
        let description = rule["annotations"]["description"]
            .as_str()
            .unwrap_or_default();
        if summary.is_empty() || description.len() < 100 || !description.contains("Check:") {
            problems.push(format!(
                "{name}: needs a summary and a description that says what to check"
            ));
        }
        // Alerts about one policy say how to read its story.
        let per_policy = rule["expr"]
            .as_str()
            .is_some_and(|e| e.contains("by (namespace, policy"));
        if per_policy
            && !description
                .contains("kubectl describe lcp -n {{ $labels.namespace }} {{ $labels.policy }}")
        {
            problems.push(format!(
                "{name}: the description should point to kubectl describe lcp"
            ));
        }
    }

    let files = tests["rule_files"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let alerts_file = repo_path(ALERTS).canonicalize()?;
    let test_dir = repo_path(ALERT_TESTS)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if !files.iter().any(|f| {
        f.as_str()
            .and_then(|f| test_dir.join(f).canonicalize().ok())
            .is_some_and(|p| p == alerts_file)
    }) {
        problems.push(format!("{ALERT_TESTS} does not load {ALERTS}"));
    }
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for group in tests["tests"].as_sequence().into_iter().flatten() {
        for case in group["alert_rule_test"].as_sequence().into_iter().flatten() {
            let name = case["alertname"].as_str().unwrap_or_default();
            match case["exp_alerts"].as_sequence() {
                Some(expected) if !expected.is_empty() => fires.insert(name),
                _ => quiet.insert(name),
            };
        }
    }
    for name in ALERT_NAMES {
        if !fires.contains(name) {
            problems.push(format!("{ALERT_TESTS}: no test where {name} fires"));
        }
        if !quiet.contains(name) {
            problems.push(format!("{ALERT_TESTS}: no test where {name} stays quiet"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}
register!(alerts_are_actionable_and_each_has_unit_tests);

fn promtool_run(promtool: &Path, args: &[&str], what: &str) -> TestResult {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", promtool.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool {} ({what}) failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

/// `promtool check rules` on the alerts, `promtool test rules` on their unit tests, and every dashboard query
/// parsed by promtool (as a recording rule, with the dashboard's variables filled in).
fn promtool_checks_and_unit_tests_the_alerts(_: &ControlPlane) -> TestResult {
    let promtool = promtool()?;
    promtool_run(&promtool, &["check", "rules", ALERTS], "the chart's alerts")?;
    promtool_run(
        &promtool,
        &["test", "rules", ALERT_TESTS],
        "the alerts' unit tests",
    )?;

    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in dashboard_queries(&dashboard()?).iter().enumerate() {
        // Grafana's label_values(SELECTOR, LABEL): the selector is PromQL.
        let query = match query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
        {
            Some((selector, _label)) => selector,
            None => query.as_str(),
        };
        let expr = query
            .replace("$namespace", ".*")
            .replace("$policy", ".*")
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1h")
            .replace("$__range", "1d");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr)?
        ));
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("dashboard-queries.yaml");
    std::fs::write(&path, rules)?;
    promtool_run(
        &promtool,
        &["check", "rules", &path.to_string_lossy()],
        "the dashboard's queries",
    )
}
register!(promtool_checks_and_unit_tests_the_alerts);
