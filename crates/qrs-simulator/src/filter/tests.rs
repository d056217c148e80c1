use super::*;
use serde_json::json;

use crate::time::parse_date;

fn rows() -> Vec<serde_json::Value> {
    vec![
        json!({"id": "0b0a6d5e-5d3f-4b8e-9d8b-3c1f1d7e0001", "name": "Ann O'Neil", "n": 5, "vip": true,
               "lastUsed": "2024-05-01T10:00:00.000Z", "user": {"userDirectory": "CORP", "userId": "ann"},
               "tags": [{"name": "VIP"}, {"name": "Finance"}], "roles": ["RootAdmin"], "note": null}),
        json!({"id": "0b0a6d5e-5d3f-4b8e-9d8b-3c1f1d7e0002", "name": "Bob Builder", "n": 10, "vip": false,
               "lastUsed": "2024-06-15T00:00:00.000Z", "user": {"userDirectory": "EXTERNAL", "userId": "bob"},
               "tags": [], "roles": [], "note": "x"}),
        json!({"id": "0b0a6d5e-5d3f-4b8e-9d8b-3c1f1d7e0003", "name": "carol", "n": 1, "vip": false,
               "lastUsed": "1753-01-01T00:00:00.000Z", "user": {"userDirectory": "corp", "userId": "carol"},
               "tags": [{"name": "Sales"}], "roles": ["ContentAdmin"], "note": null}),
    ]
}

fn select(filter: &str) -> Vec<String> {
    let f = Filter::parse::<serde_json::Value>(filter).expect("filter parses");
    rows()
        .iter()
        .filter(|r| f.as_ref().is_none_or(|f| f.matches(*r)))
        .map(|r| r["user"]["userId"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn parse_error(filter: &str) -> String {
    match Filter::parse::<serde_json::Value>(filter) {
        Ok(_) => panic!("expected {filter:?} to be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_operator() {
    assert_eq!(select("name eq 'BOB BUILDER'"), ["bob"]);
    assert_eq!(select("name ne 'bob builder'"), ["ann", "carol"]);
    assert_eq!(select("n gt 5"), ["bob"]);
    assert_eq!(select("n ge 5"), ["ann", "bob"]);
    assert_eq!(select("n lt 5"), ["carol"]);
    assert_eq!(select("n le 5"), ["ann", "carol"]);
    assert_eq!(select("name sw 'CA'"), ["carol"]);
    assert_eq!(select("name ew 'builder'"), ["bob"]);
    assert_eq!(select("name so 'o'"), ["ann", "bob", "carol"]);
    assert_eq!(select("name so 'NEI'"), ["ann"]);
}

#[test]
fn booleans_null_guids_and_nested_paths() {
    assert_eq!(select("vip eq true"), ["ann"]);
    assert_eq!(select("vip eq FALSE"), ["bob", "carol"]);
    assert_eq!(select("note eq null"), ["ann", "carol"]);
    assert_eq!(select("note ne null"), ["bob"]);
    assert_eq!(
        select("id eq 0B0A6D5E-5D3F-4B8E-9D8B-3C1F1D7E0002"),
        ["bob"]
    );
    assert_eq!(select("user.userDirectory eq 'corp'"), ["ann", "carol"]);
    assert_eq!(select("USER.USERDIRECTORY eq 'External'"), ["bob"]);
    assert_eq!(select("tags.name eq 'vip'"), ["ann"]);
    assert_eq!(
        select("tags.name eq 'Sales' or tags.name eq 'Finance'"),
        ["ann", "carol"]
    );
    assert_eq!(select("roles eq 'rootadmin'"), ["ann"]);
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_group() {
    // a or (b and c)
    assert_eq!(
        select("user.userId eq 'ann' or user.userDirectory eq 'corp' and n gt 1"),
        ["ann"]
    );
    // (a or b) and c
    assert_eq!(
        select("(user.userId eq 'ann' or user.userDirectory eq 'corp') and n lt 5"),
        ["carol"]
    );
    assert_eq!(select("((n eq 1)) OR (n EQ 10)"), ["bob", "carol"]);
}

#[test]
fn dates_in_every_accepted_format() {
    assert_eq!(
        select("lastUsed le '2024-05-01T23:59:59.999Z'"),
        ["ann", "carol"]
    );
    assert_eq!(select("lastUsed lt '2024/05/01 10:00:00'"), ["carol"]);
    assert_eq!(
        select("lastUsed le '2024/05/01 10:00:00'"),
        ["ann", "carol"]
    );
    assert_eq!(select("lastUsed gt '2024-05-01 10:00:00'"), ["bob"]);
    assert_eq!(select("lastUsed eq '2024-06-15T00:00:00Z'"), ["bob"]);
    assert_eq!(select("lastUsed ge '2024-06-15T02:00:00+02:00'"), ["bob"]);
    assert_eq!(select("lastUsed lt '1900-01-01T00:00:00.000Z'"), ["carol"]);
}

#[test]
fn quoted_quotes() {
    assert_eq!(select("name eq 'ann o''neil'"), ["ann"]);
    assert_eq!(select("name so ''''"), ["ann"]);
}

#[test]
fn empty_filter_matches_everything() {
    assert!(
        Filter::parse::<serde_json::Value>("")
            .expect("empty parses")
            .is_none()
    );
    assert!(
        Filter::parse::<serde_json::Value>("   ")
            .expect("blank parses")
            .is_none()
    );
}

#[test]
fn bad_syntax_is_rejected_with_the_qrs_message() {
    for bad in [
        "name eq 'unterminated",
        "name eq",
        "name",
        "name equals 'x'",
        "name eq bareword",
        "(name eq 'x'",
        "name eq 'x')",
        "name eq 'x' and",
        "name eq 'x' or or n eq 1",
        "1abc eq 'x'",
        "name eq 'x' n eq 1",
    ] {
        let msg = parse_error(bad);
        assert!(
            msg.starts_with("Cannot parse the expression: "),
            "{bad}: {msg}"
        );
    }
}

#[test]
fn ordering_operators_reject_strings_and_text_operators_reject_numbers() {
    assert!(parse_error("name gt 'abc'").contains("gt"));
    assert!(parse_error("id lt 0b0a6d5e-5d3f-4b8e-9d8b-3c1f1d7e0002").contains("lt"));
    assert!(parse_error("vip ge true").contains("ge"));
    assert!(parse_error("n sw 5").contains("sw"));
}

#[test]
fn many_ids_or_chain_is_a_set_probe() {
    let mut terms: Vec<String> = (0..60)
        .map(|i| format!("id eq 00000000-0000-0000-0000-{i:012}"))
        .collect();
    terms.push("id eq 0b0a6d5e-5d3f-4b8e-9d8b-3c1f1d7e0003".to_string());
    let filter = terms.join(" or ");
    let parsed = Filter::parse::<serde_json::Value>(&filter)
        .expect("parses")
        .expect("non-empty");
    assert!(matches!(parsed.root, Node::InSet { .. }));
    assert_eq!(select(&filter), ["carol"]);
}

#[test]
fn date_parser_formats() {
    let want: Timestamp = "2024-05-01T12:34:56Z".parse().expect("valid");
    assert_eq!(parse_date("2024-05-01T12:34:56.000Z"), Some(want));
    assert_eq!(parse_date("2024/05/01 12:34:56"), Some(want));
    assert_eq!(parse_date("2024-05-01 12:34:56"), Some(want));
    assert_eq!(parse_date("2024-05-01T12:34:56"), Some(want));
    assert_eq!(parse_date("not a date"), None);
    assert_eq!(parse_date("2024-13-45 99:00:00"), None);
}

#[test]
fn orderby_sorts_and_validates() {
    let sorted = |orderby: &str| {
        let mut r = rows();
        let order = OrderBy::parse::<serde_json::Value>(orderby)
            .expect("valid")
            .expect("some");
        order.sort(&mut r);
        r
    };
    let ids: Vec<_> = sorted("n desc")
        .iter()
        .map(|v| v["n"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(ids, [10, 5, 1]);
    let by_name = sorted("name");
    let names: Vec<_> = by_name
        .iter()
        .map(|v| v["user"]["userId"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["ann", "bob", "carol"]);
    assert!(OrderBy::parse::<serde_json::Value>("name sideways").is_err());
    assert!(
        OrderBy::parse::<serde_json::Value>("")
            .expect("valid")
            .is_none()
    );
}
