//! The QRS `filter` and `orderby` query languages.
//!
//! Grammar (help.qlik.com "Filtering"), with `and` binding tighter than `or` and parentheses for grouping:
//!
//! ```text
//! expr    := and ( "or" and )*
//! and     := primary ( "and" primary )*
//! primary := "(" expr ")" | path op value
//! op      := eq | ne | gt | ge | lt | le | sw | ew | so
//! value   := 'quoted string' ('' escapes a quote) | number | GUID | true | false | null
//! ```
//!
//! Semantics follow what QRS users rely on:
//! - string comparisons are case-insensitive;
//! - a path through an array (`tags.name`) matches when any element matches;
//! - when a literal parses as a date (ISO 8601, `yyyy/MM/dd HH:mm:ss` or `yyyy-MM-dd HH:mm:ss`, read as UTC)
//!   and the property holds a date, the two are compared as instants;
//! - `gt ge lt le` need a number or a date (QRS rejects them on strings and GUIDs), `sw ew so` need a string.
//!
//! Filters are evaluated over typed entities through [`Record`], not over rendered JSON, so a filter over tens of
//! thousands of allocations costs milliseconds. A run of `prop eq 'x' or prop eq 'y' ...` on one property (the
//! way clients batch look-ups by id) is compiled into a hash-set probe.
//!
//! This file holds the parsed tree and the [`Record`] trait; reading the text is in `parse.rs`, evaluating the tree
//! in `eval.rs`, `orderby` in `order.rs` and JSON values as records in `json.rs`.

mod eval;
mod json;
mod order;
mod parse;

use std::collections::HashSet;
use std::fmt;

use jiff::Timestamp;

pub(crate) use order::OrderBy;

/// The prefix QRS puts in front of every filter error.
const PARSE_ERROR_PREFIX: &str = "Cannot parse the expression: ";

/// A filter or orderby expression that QRS would reject with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PARSE_ERROR_PREFIX}{}", self.0)
    }
}

impl std::error::Error for FilterError {}

fn err<T>(detail: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(detail.into()))
}

/// One value found at a property path of an entity.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    Time(Timestamp),
    Num(f64),
    Bool(bool),
    Null,
}

/// An entity that filters and orderby clauses can look into.
pub(crate) trait Record {
    /// Whether `path` (lower-cased segments) names a property of this kind of entity. Checked once per filter, so a
    /// misspelt property is a 400 even when no row would have reached it.
    fn known_path(path: &[String]) -> bool
    where
        Self: Sized;

    /// Calls `f` with every value found at `path` and returns true as soon as one call does.
    fn visit(&self, path: &[String], f: &mut dyn FnMut(Val<'_>) -> bool) -> bool;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sw,
    Ew,
    So,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "so" => Op::So,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::So => "so",
        }
    }

    fn is_ordering(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }

    fn is_text(self) -> bool {
        matches!(self, Op::Sw | Op::Ew | Op::So)
    }
}

#[derive(Debug, Clone)]
enum Literal {
    /// A quoted string or a bare GUID; `time` and `num` are its readings as a date or a number, when it has them.
    Str {
        text: String,
        lower: String,
        time: Option<Timestamp>,
        num: Option<f64>,
    },
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone)]
struct Comparison {
    path: Vec<String>,
    op: Op,
    lit: Literal,
}

#[derive(Debug, Clone)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Cmp(Comparison),
    /// `path eq 'a' or path eq 'b' or ...` with plain-string literals, lower-cased.
    InSet {
        path: Vec<String>,
        set: HashSet<String>,
    },
}

/// A parsed, validated filter.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    root: Node,
}

impl Filter {
    /// Parses `input` for entities of type `R`. An empty or blank filter is `None` (everything matches).
    pub(crate) fn parse<R: Record>(input: &str) -> Result<Option<Filter>, FilterError> {
        if input.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(Filter {
            root: parse::expression(input, R::known_path)?,
        }))
    }

    pub(crate) fn matches(&self, record: &dyn Record) -> bool {
        eval::eval(&self.root, record)
    }
}

#[cfg(test)]
mod tests;
