//! The `orderby` language: parsing `prop [asc|desc], ...` and a stable sort of records by it.

use std::cmp::Ordering;

use jiff::Timestamp;

use super::parse::is_path;
use super::{FilterError, Record, Val, err};

/// A sort key taken from one value of a record.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub(crate) enum SortKey {
    Null,
    Bool(bool),
    Num(f64),
    Time(Timestamp),
    Str(String),
}

impl SortKey {
    pub(crate) fn of(record: &dyn Record, path: &[String]) -> SortKey {
        let mut key = SortKey::Null;
        record.visit(path, &mut |v| {
            key = match v {
                Val::Null => SortKey::Null,
                Val::Bool(b) => SortKey::Bool(b),
                Val::Num(n) => SortKey::Num(n),
                Val::Time(t) => SortKey::Time(t),
                Val::Str(s) => SortKey::Str(s.to_lowercase()),
            };
            true
        });
        key
    }

    fn cmp_total(&self, other: &SortKey) -> Ordering {
        fn rank(k: &SortKey) -> u8 {
            match k {
                SortKey::Null => 0,
                SortKey::Bool(_) => 1,
                SortKey::Num(_) => 2,
                SortKey::Time(_) => 3,
                SortKey::Str(_) => 4,
            }
        }
        match (self, other) {
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            (SortKey::Num(a), SortKey::Num(b)) => a.total_cmp(b),
            (SortKey::Time(a), SortKey::Time(b)) => a.cmp(b),
            (SortKey::Str(a), SortKey::Str(b)) => a.cmp(b),
            (a, b) => rank(a).cmp(&rank(b)),
        }
    }
}

/// A parsed `orderby`: one or more `prop [asc|desc]` separated by commas.
#[derive(Debug, Clone)]
pub(crate) struct OrderBy {
    keys: Vec<(Vec<String>, bool)>,
}

impl OrderBy {
    pub(crate) fn parse<R: Record>(input: &str) -> Result<Option<OrderBy>, FilterError> {
        let mut keys = Vec::new();
        for part in input.split(',') {
            let mut words = part.split_whitespace();
            let Some(property) = words.next() else {
                continue;
            };
            if !is_path(property) {
                return err(format!("'{property}' is not a property name in orderby"));
            }
            let path: Vec<String> = property.split('.').map(str::to_ascii_lowercase).collect();
            if !R::known_path(&path) {
                return err(format!("unknown property '{property}' in orderby"));
            }
            let ascending = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => true,
                Some("desc") => false,
                Some(other) => {
                    return err(format!(
                        "expected asc or desc in orderby but found '{other}'"
                    ));
                }
            };
            if let Some(extra) = words.next() {
                return err(format!("unexpected '{extra}' in orderby"));
            }
            keys.push((path, ascending));
        }
        Ok(if keys.is_empty() {
            None
        } else {
            Some(OrderBy { keys })
        })
    }

    /// Builds an order from a single property path and a direction (the table endpoint's sortColumn).
    pub(crate) fn single(path: Vec<String>, ascending: bool) -> OrderBy {
        OrderBy {
            keys: vec![(path, ascending)],
        }
    }

    /// Sorts `rows` in place; the sort is stable, so equal keys keep the store's order.
    pub(crate) fn sort<R: Record>(&self, rows: &mut [R]) {
        let mut keyed: Vec<(Vec<SortKey>, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                (
                    self.keys.iter().map(|(p, _)| SortKey::of(r, p)).collect(),
                    i,
                )
            })
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for (i, (_, ascending)) in self.keys.iter().enumerate() {
                let ord = a[i].cmp_total(&b[i]);
                let ord = if *ascending { ord } else { ord.reverse() };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
        apply_permutation(rows, order);
    }
}

/// Reorders `rows` so that position k holds what was at `order[k]`.
fn apply_permutation<R>(rows: &mut [R], mut order: Vec<usize>) {
    for start in 0..order.len() {
        let mut current = start;
        while order[current] != start {
            let next = order[current];
            rows.swap(current, next);
            order[current] = current;
            current = next;
        }
        order[current] = current;
    }
}
