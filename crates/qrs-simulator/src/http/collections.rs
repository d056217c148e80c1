//! What every QRS collection endpoint shares: condensed, `full`, `count`, one by id, and the `/table` view, each
//! filtered and ordered with QRS's filter language.

use axum::http::{Method, StatusCode};
use serde::Serialize;
use uuid::Uuid;

use crate::filter::{Filter, OrderBy, Record};
use crate::views::{
    AllocView, AllocationOut, AppCondensedOut, AppObjectCondensedOut, AppObjectOut, AppObjectView,
    AppOut, AppView, IdCondensedOut, UserCondensedOut, UserOut, UserView,
};

use super::checks::*;
use super::reply::*;

/// What a collection endpoint (`/x`, `/x/full`, `/x/count`, `/x/table`, `/x/{id}`) was asked for.
pub(super) enum CollectionOp {
    Condensed,
    Full,
    Count,
    Table,
    One(Uuid),
}

pub(super) fn collection_op(
    method: &Method,
    rest: &[&str],
    original: &[&str],
) -> Result<CollectionOp, Reply> {
    let op = match rest {
        [] => CollectionOp::Condensed,
        ["full"] => CollectionOp::Full,
        ["count"] => CollectionOp::Count,
        ["table"] => CollectionOp::Table,
        [_] => match Uuid::try_parse(original.first().copied().unwrap_or_default()) {
            Ok(id) => CollectionOp::One(id),
            Err(_) => return Err(Reply::not_found()),
        },
        _ => return Err(Reply::not_found()),
    };
    let allowed = match op {
        CollectionOp::Table => method == Method::POST,
        _ => method == Method::GET,
    };
    if allowed {
        Ok(op)
    } else {
        Err(Reply::method_not_allowed())
    }
}

/// An entity type a collection endpoint serves.
pub(super) trait Entity: Record + Copy {
    type Full: Serialize;
    type Condensed: Serialize;
    fn id(self) -> Uuid;
    fn full(self, privileges: bool) -> Self::Full;
    fn condensed(self, privileges: bool) -> Self::Condensed;
    /// The entity type name for a table response.
    fn table_type() -> &'static str;
}

impl<'a> Entity for AllocView<'a> {
    type Full = AllocationOut<'a>;
    type Condensed = IdCondensedOut;

    fn id(self) -> Uuid {
        self.a.id
    }

    fn full(self, privileges: bool) -> AllocationOut<'a> {
        AllocView::full(self, privileges)
    }

    fn condensed(self, privileges: bool) -> IdCondensedOut {
        AllocView::condensed(self, privileges)
    }

    fn table_type() -> &'static str {
        "LicenseAccessType"
    }
}

impl<'a> Entity for UserView<'a> {
    type Full = UserOut<'a>;
    type Condensed = UserCondensedOut<'a>;

    fn id(self) -> Uuid {
        self.u.id
    }

    fn full(self, privileges: bool) -> UserOut<'a> {
        UserView::full(self, privileges)
    }

    fn condensed(self, privileges: bool) -> UserCondensedOut<'a> {
        UserView::condensed(self, privileges)
    }

    fn table_type() -> &'static str {
        "User"
    }
}

impl<'a> Entity for AppView<'a> {
    type Full = AppOut<'a>;
    type Condensed = AppCondensedOut<'a>;

    fn id(self) -> Uuid {
        self.a.id
    }

    fn full(self, privileges: bool) -> AppOut<'a> {
        AppView::full(self, privileges)
    }

    fn condensed(self, privileges: bool) -> AppCondensedOut<'a> {
        AppView::condensed(self, privileges)
    }

    fn table_type() -> &'static str {
        "App"
    }
}

impl<'a> Entity for AppObjectView<'a> {
    type Full = AppObjectOut<'a>;
    type Condensed = AppObjectCondensedOut<'a>;

    fn id(self) -> Uuid {
        self.o.id
    }

    fn full(self, privileges: bool) -> AppObjectOut<'a> {
        AppObjectView::full(self, privileges)
    }

    fn condensed(self, privileges: bool) -> AppObjectCondensedOut<'a> {
        AppObjectView::condensed(self, privileges)
    }

    fn table_type() -> &'static str {
        "App.Object"
    }
}

/// A row already rendered as JSON (login access groups and usage: few rows).
#[derive(Clone, Copy)]
pub(super) struct JsonRow<'a>(pub(super) &'a serde_json::Value);

impl Record for JsonRow<'_> {
    fn known_path(_path: &[String]) -> bool {
        true
    }

    fn visit(&self, path: &[String], f: &mut dyn FnMut(crate::filter::Val<'_>) -> bool) -> bool {
        self.0.visit(path, f)
    }
}

impl<'a> Entity for JsonRow<'a> {
    type Full = &'a serde_json::Value;
    type Condensed = serde_json::Value;

    fn id(self) -> Uuid {
        self.0
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::try_parse(s).ok())
            .unwrap_or_default()
    }

    fn full(self, _privileges: bool) -> &'a serde_json::Value {
        self.0
    }

    fn condensed(self, _privileges: bool) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for key in ["id", "name", "privileges"] {
            if let Some(v) = self.0.get(key) {
                out.insert(key.to_string(), v.clone());
            }
        }
        serde_json::Value::Object(out)
    }

    fn table_type() -> &'static str {
        "Entity"
    }
}

/// Serves a read-only collection endpoint over `rows`.
pub(super) fn serve_collection<E: Entity>(
    op: CollectionOp,
    rows: Vec<E>,
    query: &Query,
    body: &[u8],
) -> Reply {
    let privileges = query.flag("privileges");
    let filter = match Filter::parse::<E>(query.get("filter").unwrap_or("")) {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    let keep = |r: &E| filter.as_ref().is_none_or(|f| f.matches(r));
    match op {
        CollectionOp::One(id) => match rows.into_iter().find(|r| r.id() == id) {
            Some(r) => Reply::ok(&r.full(privileges)),
            None => Reply::not_found(),
        },
        CollectionOp::Count => {
            Reply::ok(&serde_json::json!({ "value": rows.iter().filter(|r| keep(r)).count() }))
        }
        CollectionOp::Condensed | CollectionOp::Full => {
            let mut selected: Vec<E> = rows.into_iter().filter(|r| keep(r)).collect();
            match OrderBy::parse::<E>(query.get("orderby").unwrap_or("")) {
                Ok(Some(order)) => order.sort(&mut selected),
                Ok(None) => {}
                Err(e) => return e.into(),
            }
            if matches!(op, CollectionOp::Full) {
                json_array(selected.into_iter().map(|r| r.full(privileges)))
            } else {
                json_array(selected.into_iter().map(|r| r.condensed(privileges)))
            }
        }
        CollectionOp::Table => {
            let selected: Vec<E> = rows.into_iter().filter(|r| keep(r)).collect();
            table(selected, query, body, privileges)
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct TableDefinition {
    #[serde(rename = "type", alias = "Type", default)]
    kind: Option<String>,
    #[serde(alias = "Columns", default)]
    columns: Vec<TableColumn>,
}

#[derive(serde::Deserialize)]
pub(super) struct TableColumn {
    #[serde(alias = "Name", default)]
    name: String,
    #[serde(rename = "columnType", alias = "ColumnType", default)]
    column_type: Option<String>,
    #[serde(alias = "Definition", default)]
    definition: Option<String>,
}

/// `POST .../table`: columns of type `Property` are read from the entity by their dotted `definition`;
/// `Function` and `List` columns are answered with null. `take=0` (or no `take`) means all rows.
pub(super) fn table<E: Entity>(
    mut rows: Vec<E>,
    query: &Query,
    body: &[u8],
    privileges: bool,
) -> Reply {
    let def: TableDefinition = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) => return Reply::bad_request(&format!("Invalid table definition: {e}")),
    };
    let paths = column_paths(&def.columns);
    let (skip, take) = match (page_number(query, "skip"), page_number(query, "take")) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Err(reply) = sort_by_column(&mut rows, query, &def.columns, &paths) {
        return reply;
    }
    let page = rows
        .into_iter()
        .skip(skip)
        .take(if take == 0 { usize::MAX } else { take });
    let mut table_rows = Vec::new();
    for row in page {
        match table_row(row, &paths, privileges) {
            Ok(cells) => table_rows.push(cells),
            Err(reply) => return reply,
        }
    }
    Reply::ok(&serde_json::json!({
        "id": Uuid::new_v4(),
        "type": def.kind.unwrap_or_else(|| E::table_type().to_string()),
        "columnNames": def.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        "rows": table_rows,
    }))
}

/// The lower-cased path each column reads; `None` for the columns answered with null.
fn column_paths(columns: &[TableColumn]) -> Vec<Option<Vec<String>>> {
    columns
        .iter()
        .map(|c| {
            let is_property = c
                .column_type
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("property"));
            let definition = c.definition.as_deref().unwrap_or(&c.name);
            is_property.then(|| definition.split('.').map(str::to_ascii_lowercase).collect())
        })
        .collect()
}

/// `skip` or `take`; absent or empty is 0.
fn page_number(query: &Query, name: &str) -> Result<usize, Reply> {
    match query.get(name) {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| Reply::bad_request(&format!("Invalid value for parameter {name}: '{v}'"))),
    }
}

/// Sorts by `sortColumn`, named by a column's name or else by a property path, when one is given.
fn sort_by_column<E: Entity>(
    rows: &mut [E],
    query: &Query,
    columns: &[TableColumn],
    paths: &[Option<Vec<String>>],
) -> Result<(), Reply> {
    let Some(column) = query.get("sortcolumn").filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    let ascending = query
        .get("orderascending")
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let path = columns
        .iter()
        .zip(paths)
        .find(|(c, _)| c.name.eq_ignore_ascii_case(column))
        .and_then(|(_, p)| p.clone())
        .unwrap_or_else(|| column.split('.').map(str::to_ascii_lowercase).collect());
    if !E::known_path(&path) {
        return Err(Reply::bad_request(&format!(
            "Unknown sort column '{column}'"
        )));
    }
    OrderBy::single(path, ascending).sort(rows);
    Ok(())
}

/// One row's cells, read from its full JSON so that a cell holds what the full view would show.
fn table_row<E: Entity>(
    row: E,
    paths: &[Option<Vec<String>>],
    privileges: bool,
) -> Result<Vec<serde_json::Value>, Reply> {
    let value = serde_json::to_value(row.full(privileges)).map_err(|e| {
        Reply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("serialization failed: {e}"),
        )
    })?;
    Ok(paths
        .iter()
        .map(|p| {
            p.as_ref()
                .map_or(serde_json::Value::Null, |p| json_at(&value, p))
        })
        .collect())
}

/// The value at a lower-cased dotted path (keys matched case-insensitively); arrays map over their elements.
pub(super) fn json_at(value: &serde_json::Value, path: &[String]) -> serde_json::Value {
    use serde_json::Value;
    match (value, path.split_first()) {
        (v, None) => v.clone(),
        (Value::Array(items), Some(_)) => {
            Value::Array(items.iter().map(|i| json_at(i, path)).collect())
        }
        (Value::Object(map), Some((head, rest))) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(head))
            .map_or(Value::Null, |(_, v)| json_at(v, rest)),
        _ => Value::Null,
    }
}
