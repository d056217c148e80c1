use super::collections::json_at;
use super::*;

#[test]
fn qlik_user_header_variants() {
    let want = Some(Identity::new("INTERNAL", "sa_repository"));
    assert_eq!(
        parse_qlik_user("UserDirectory=INTERNAL; UserId=sa_repository"),
        want
    );
    assert_eq!(
        parse_qlik_user("UserDirectory=INTERNAL;UserId=sa_repository"),
        want
    );
    assert_eq!(
        parse_qlik_user("userdirectory = INTERNAL ; USERID = sa_repository ;"),
        want
    );
    assert_eq!(
        parse_qlik_user("UserDirectory=CORP%20EU; UserId=j%C3%B8rn"),
        Some(Identity::new("CORP EU", "jørn"))
    );
    assert_eq!(parse_qlik_user("UserDirectory=INTERNAL"), None);
    assert_eq!(parse_qlik_user("INTERNAL\\sa_repository"), None);
    assert_eq!(parse_qlik_user("UserDirectory=; UserId=x"), None);
}

#[test]
fn query_decoding_and_stray_ampersand() {
    let q =
        Query::parse("Xrfkey=abc&filter=name+eq+%27a%2Bb%27").unwrap_or_else(|_| panic!("parses"));
    assert_eq!(q.get("xrfkey"), Some("abc"));
    assert_eq!(q.get("FILTER"), Some("name eq 'a+b'"));
    assert!(Query::parse("xrfkey=abc&&filter=x").is_err());
    assert!(Query::parse("").is_ok());
}

#[test]
fn json_path_extraction() {
    let v = serde_json::json!({"User": {"userId": "a"}, "tags": [{"name": "x"}, {"name": "y"}]});
    assert_eq!(json_at(&v, &["user".into(), "userid".into()]), "a");
    assert_eq!(
        json_at(&v, &["tags".into(), "name".into()]),
        serde_json::json!(["x", "y"])
    );
    assert_eq!(json_at(&v, &["missing".into()]), serde_json::Value::Null);
}
