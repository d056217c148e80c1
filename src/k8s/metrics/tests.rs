use super::*;

#[test]
fn names_follow_the_contract() {
    let m = Metrics::new();
    m.set_policy_state("ns", "p", true, true);
    m.set_next_run(
        "ns",
        "p",
        Some(jiff::Timestamp::from_second(1_800_000_000).unwrap()),
    );
    m.runs
        .get_or_create(&RunLabels {
            namespace: "ns".into(),
            policy: "p".into(),
            result: "Succeeded".into(),
        })
        .inc();
    let text = m.encode();
    assert!(
        text.contains(
            "qlik_reclaimer_runs_total{namespace=\"ns\",policy=\"p\",result=\"Succeeded\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "qlik_reclaimer_next_run_timestamp_seconds{namespace=\"ns\",policy=\"p\"} 1800000000"
        ),
        "{text}"
    );
    m.run_duration
        .get_or_create(&PolicyLabels {
            namespace: "ns".into(),
            policy: "p".into(),
        })
        .observe(3.0);
    assert!(
        m.encode()
            .contains("# TYPE qlik_reclaimer_run_duration_seconds histogram")
    );
    m.forget_policy("ns", "p");
    assert!(
        !m.encode()
            .contains("qlik_reclaimer_next_run_timestamp_seconds{")
    );
}

#[test]
fn a_deleted_policy_loses_its_gauges() {
    let m = Metrics::new();
    for policy in ["kept", "deleted"] {
        m.register_policy("ns", policy, &[AccessType::Professional], true, None, None);
        m.set_policy_state("ns", policy, false, true);
    }
    m.retain_policies(|_, name| name == "kept");
    let text = m.encode();
    assert!(
        text.contains("qlik_reclaimer_policy_ready{namespace=\"ns\",policy=\"kept\"} 0"),
        "{text}"
    );
    assert!(
        !text.contains("qlik_reclaimer_policy_ready{namespace=\"ns\",policy=\"deleted\"}"),
        "{text}"
    );
}

#[test]
fn reclaimed_seats_are_counted_by_the_rule_that_took_them() {
    use crate::policy::TypeCounts;
    let m = Metrics::new();
    m.register_policy("ns", "p", &[AccessType::Analyzer], false, None, None);
    let mut report =
        crate::run::RunReport::failed("r".into(), jiff::Timestamp::now(), false, String::new());
    report.per_access_type.insert(
        AccessType::Analyzer,
        TypeCounts {
            reclaimed: 6,
            leavers: 2,
            redundant: 1,
            ..TypeCounts::default()
        },
    );
    m.record_run("ns", "p", &report, 1.0);
    let text = m.encode();
    for (reason, seats) in [("idle", 3), ("leaver", 2), ("redundant", 1)] {
        let line = format!(
            "qlik_reclaimer_reclaimed_total{{namespace=\"ns\",policy=\"p\",access_type=\"analyzer\",dry_run=\"false\",reason=\"{reason}\"}} {seats}"
        );
        assert!(text.contains(&line), "no {line} in {text}");
    }
}

#[test]
fn moves_are_counted_from_and_to_but_not_those_of_a_dry_run() {
    use crate::policy::TypeCounts;
    let m = Metrics::new();
    m.register_policy("ns", "p", &[AccessType::Professional], false, None, None);
    let zero = "qlik_reclaimer_moved_total{namespace=\"ns\",policy=\"p\",from=\"professional\",to=\"analyzer\"} 0";
    assert!(m.encode().contains(zero), "{}", m.encode());
    let run = |dry_run: bool| {
        let mut report = crate::run::RunReport::failed(
            "r".into(),
            jiff::Timestamp::now(),
            dry_run,
            String::new(),
        );
        report.per_access_type.insert(
            AccessType::Professional,
            TypeCounts {
                moved: 3,
                ..TypeCounts::default()
            },
        );
        report
    };
    m.record_run("ns", "p", &run(true), 1.0);
    assert!(m.encode().contains(zero), "a dry run moves nothing");
    m.record_run("ns", "p", &run(false), 1.0);
    let text = m.encode();
    let line = "qlik_reclaimer_moved_total{namespace=\"ns\",policy=\"p\",from=\"professional\",to=\"analyzer\"} 3";
    assert!(text.contains(line), "no {line} in {text}");
}
