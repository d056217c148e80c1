use super::*;

const ALLOCATION: &str = "3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c9d";
const USER: &str = "5e0c2a1b-8d3f-4a6e-b7c9-0f1e2d3c4b5a";

fn allocation(json: serde_json::Value) -> Result<Allocation, String> {
    let row: AllocationJson = serde_json::from_value(json).map_err(|e| e.to_string())?;
    row.into_allocation(AccessType::Professional)
}

fn complete() -> serde_json::Value {
    serde_json::json!({
        "id": ALLOCATION,
        "createdDate": "2024-01-01T00:00:00.000Z",
        "lastUsed": "2024-01-31T19:44:28.951Z",
        "quarantined": false,
        "user": {"id": USER, "userId": "jdoe", "userDirectory": "CORP", "name": "J Doe"},
    })
}

#[test]
fn a_table_row_gives_access_only_when_both_flags_say_so() {
    let holder = |quarantined: serde_json::Value, excess: serde_json::Value| {
        vec![ALLOCATION.into(), USER.into(), quarantined, excess]
            .into_holder()
            .map(|h| h.map(|h| h.access))
    };
    use serde_json::{Value, json};
    assert_eq!(
        holder(json!(false), json!(false)),
        Ok(Some(SeatAccess::Gives))
    );
    assert_eq!(
        holder(json!(true), json!(false)),
        Ok(Some(SeatAccess::Denied))
    );
    assert_eq!(
        holder(json!(false), json!(true)),
        Ok(Some(SeatAccess::Denied))
    );
    // A cell QRS left empty is unknown, not "not excess".
    for missing in [Value::Null, json!("false"), json!(0)] {
        assert_eq!(
            holder(json!(false), missing.clone()),
            Ok(Some(SeatAccess::Unknown("excess"))),
            "excess {missing}"
        );
        assert_eq!(
            holder(missing.clone(), json!(false)),
            Ok(Some(SeatAccess::Unknown("quarantined"))),
            "quarantined {missing}"
        );
    }
    // A flag that denies access decides, whatever the other.
    assert_eq!(
        holder(Value::Null, json!(true)),
        Ok(Some(SeatAccess::Denied))
    );
    assert_eq!(
        holder(json!(true), Value::Null),
        Ok(Some(SeatAccess::Denied))
    );
}

#[test]
fn sentinels_mean_never_and_blanks_are_unreadable() {
    assert_eq!(parse_qrs_date("1753-01-01T00:00:00.000Z"), Ok(None));
    assert_eq!(parse_qrs_date("0001-01-01T00:00:00.000Z"), Ok(None));
    assert_eq!(parse_qrs_date(""), Err(()), "QRS always writes a date");
    assert_eq!(parse_qrs_date("garbage"), Err(()));
    let ts = parse_qrs_date("2024-01-31T19:44:28.951Z").unwrap().unwrap();
    assert_eq!(format_qrs_date(ts), "2024-01-31T19:44:28.951Z");
    let naive = parse_qrs_date("2024-01-31T19:44:28").unwrap().unwrap();
    assert_eq!(format_qrs_date(naive), "2024-01-31T19:44:28.000Z");
}

#[test]
fn guids_are_exactly_guids() {
    assert!(is_guid(ALLOCATION));
    assert!(is_guid(&ALLOCATION.to_uppercase()));
    for bad in [
        "",
        "a1",
        "3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c9z",
        "3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c9d0",
        "3f2c7d9e1b4a-4c8e-9f00-2d5e6a7b8c9d0",
        "{3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c9}",
        "../../qrs/license/x",
    ] {
        assert!(!is_guid(bad), "{bad:?}");
    }
}

#[test]
fn a_complete_allocation_is_read() {
    let alloc = allocation(complete()).unwrap();
    assert_eq!(alloc.id, ALLOCATION);
    assert_eq!(alloc.incomplete, None);
    assert!(matches!(alloc.last_used, LastUse::At(_)));
}

#[test]
fn ids_that_are_not_guids_make_the_answer_nonsense() {
    for (field, value) in [
        ("id", "3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c0bz"),
        ("id", "3f2c7d9e-1b4a-4c8e-9f00-2d5e6a7b8c0"),
        ("id", ""),
    ] {
        let mut json = complete();
        json[field] = value.into();
        let err = allocation(json).unwrap_err();
        assert!(err.contains("not a GUID"), "{err}");
    }
    let mut json = complete();
    json["user"]["id"] = "u1".into();
    assert!(allocation(json).unwrap_err().contains("not a GUID"));
    let mut json = complete();
    json["id"] = 17.into();
    assert!(allocation(json).is_err(), "a number is no id");
}

#[test]
fn missing_or_null_decision_fields_make_the_allocation_unknown() {
    for (field, expected) in [
        ("lastUsed", "lastUsed"),
        ("createdDate", "createdDate"),
        ("quarantined", "quarantined"),
    ] {
        for value in [None, Some(serde_json::Value::Null)] {
            let mut json = complete();
            match &value {
                None => {
                    json.as_object_mut().unwrap().remove(field);
                }
                Some(null) => json[field] = null.clone(),
            }
            let alloc = allocation(json).unwrap();
            assert_eq!(alloc.incomplete, Some(expected), "{field} {value:?}");
        }
    }
    let mut json = complete();
    json["createdDate"] = "yesterday".into();
    assert_eq!(allocation(json).unwrap().incomplete, Some("createdDate"));
    let mut json = complete();
    json["lastUsed"] = "".into();
    assert_eq!(
        allocation(json).unwrap().last_used,
        LastUse::Unknown(String::new()),
        "an empty date is not \"never used\""
    );
}

#[test]
fn values_of_the_wrong_type_make_the_answer_nonsense() {
    let mut json = complete();
    json["lastUsed"] = 1.into();
    assert!(allocation(json).is_err());
    let mut json = complete();
    json["quarantined"] = "no".into();
    assert!(allocation(json).is_err());
    let user = r#"{"id":"5e0c2a1b-8d3f-4a6e-b7c9-0f1e2d3c4b5a","roles":"RootAdmin"}"#;
    assert!(
        serde_json::from_str::<UserJson>(user).is_err(),
        "roles is a list"
    );
}

#[test]
fn a_user_record_without_a_list_is_unknown_not_empty() {
    let user: UserJson =
        serde_json::from_str(r#"{"id":"5e0c2a1b-8d3f-4a6e-b7c9-0f1e2d3c4b5a","tags":[]}"#).unwrap();
    let details = user.into_details().unwrap();
    assert_eq!(details.roles, None);
    assert_eq!(details.custom_properties, None);
    assert_eq!(details.tags, Some(vec![]));
    let user: UserJson = serde_json::from_str(r#"{"id":"nope","roles":[]}"#).unwrap();
    assert!(user.into_details().unwrap_err().contains("not a GUID"));
}

#[test]
fn allocation_without_user_makes_no_sense_unless_the_user_was_deleted() {
    let mut json = complete();
    json["user"] = serde_json::Value::Null;
    let err = allocation(json.clone()).unwrap_err();
    assert!(err.contains("has no user"), "{err}");

    json["quarantined"] = true.into();
    json["deletedUserId"] = "jdoe".into();
    json["deletedUserDirectory"] = "CORP".into();
    let alloc = allocation(json).unwrap();
    assert!(alloc.quarantined, "kept as quarantined, never reclaimed");
    assert_eq!(alloc.user.to_string(), "CORP\\jdoe");
}

#[test]
fn names_and_ids_longer_than_qlik_stores_make_the_answer_nonsense() {
    // Multi-byte characters: Qlik counts characters, not bytes.
    for (path, limit) in [
        (["user", "userId"], USER_ID_CHARS),
        (["user", "userDirectory"], USER_ID_CHARS),
        (["user", "name"], USER_NAME_CHARS),
    ] {
        let mut json = complete();
        json[path[0]][path[1]] = "é".repeat(limit).into();
        let alloc = allocation(json.clone()).expect("at the limit");
        if path[1] == "name" {
            assert_eq!(alloc.user_name.chars().count(), limit, "kept whole");
        }
        json[path[0]][path[1]] = "é".repeat(limit + 1).into();
        let err = allocation(json).unwrap_err();
        assert!(
            err.contains(path[1]) && err.contains(&format!("longer than {limit} characters")),
            "{err}"
        );
    }
    let mut json = complete();
    json["user"] = serde_json::Value::Null;
    json["deletedUserDirectory"] = "CORP".into();
    json["deletedUserId"] = "x".repeat(USER_ID_CHARS).into();
    assert!(allocation(json.clone()).is_ok());
    json["deletedUserId"] = "x".repeat(USER_ID_CHARS + 1).into();
    assert!(allocation(json).unwrap_err().contains("deletedUserId"));
}

/// What a run keeps of an allocation at Qlik's limits, in the widest characters (four bytes each): about
/// 4 KiB, so the 250 allocations that kept 241 MiB with 900 KB names keep about 1 MiB at most.
#[test]
fn an_allocation_at_the_limits_keeps_a_few_kilobytes() {
    let wide = |n: usize| "\u{1F600}".repeat(n);
    let rows: Vec<String> = (0..250)
        .map(|_| {
            let mut json = complete();
            json["user"]["name"] = wide(USER_NAME_CHARS).into();
            json["user"]["userId"] = wide(USER_ID_CHARS).into();
            json["user"]["userDirectory"] = wide(USER_ID_CHARS).into();
            json.to_string()
        })
        .collect();
    let (kept, peak) = crate::testing::peak_of(|| {
        rows.iter()
            .map(|row| {
                serde_json::from_str::<AllocationJson>(row)
                    .map_err(|e| e.to_string())
                    .and_then(|a| a.into_allocation(AccessType::Professional))
            })
            .collect::<Result<Vec<_>, _>>()
    });
    assert_eq!(kept.expect("at the limits").len(), 250);
    assert!(peak < 250 * 5 * 1024, "{peak} bytes for 250 allocations");
}

#[test]
fn unreadable_last_use_is_kept_as_unknown() {
    let mut json = complete();
    json["lastUsed"] = "31/01/2024".into();
    let alloc = allocation(json).unwrap();
    assert_eq!(alloc.last_used, LastUse::Unknown("31/01/2024".into()));
    assert_eq!(alloc.user, UserIdentity::new("corp", "JDOE"));
}
