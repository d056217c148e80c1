//! Evaluating a parsed filter against a record: comparisons with QRS's case-insensitive, date- and number-aware
//! semantics, and set probes.

use std::cmp::Ordering;

use super::{Literal, Node, Op, Record, Val};
use crate::time::{format_ts, parse_date};

pub(super) fn eval(node: &Node, record: &dyn Record) -> bool {
    match node {
        Node::Or(terms) => terms.iter().any(|t| eval(t, record)),
        Node::And(terms) => terms.iter().all(|t| eval(t, record)),
        Node::Cmp(c) => record.visit(&c.path, &mut |v| compare(c.op, &c.lit, v)),
        Node::InSet { path, set } => record.visit(path, &mut |v| match v {
            Val::Str(s) => {
                if s.bytes().any(|b| b.is_ascii_uppercase()) || !s.is_ascii() {
                    set.contains(&s.to_lowercase())
                } else {
                    set.contains(s)
                }
            }
            Val::Time(t) => set.contains(&format_ts(t).to_lowercase()),
            Val::Num(_) | Val::Bool(_) | Val::Null => false,
        }),
    }
}

fn compare(op: Op, lit: &Literal, value: Val<'_>) -> bool {
    if op.is_text() {
        return text_compare(op, lit, value);
    }
    // The ordering of the property's value relative to the literal, when the two are comparable.
    let ordering: Option<Ordering> = match (lit, value) {
        (Literal::Null, Val::Null) => Some(Ordering::Equal),
        (Literal::Null, _) | (_, Val::Null) => None,
        (Literal::Num(n), Val::Num(v)) => v.partial_cmp(n),
        (Literal::Num(n), Val::Str(s)) => {
            s.trim().parse::<f64>().ok().and_then(|v| v.partial_cmp(n))
        }
        (Literal::Num(_), _) => None,
        (Literal::Bool(b), Val::Bool(v)) => Some(v.cmp(b)),
        (Literal::Bool(b), Val::Str(s)) => {
            let text = if *b { "true" } else { "false" };
            Some(if s.eq_ignore_ascii_case(text) {
                Ordering::Equal
            } else {
                Ordering::Less
            })
        }
        (Literal::Bool(_), _) => None,
        (Literal::Str { time: Some(t), .. }, Val::Time(v)) => Some(v.cmp(t)),
        (Literal::Str { time: Some(t), .. }, Val::Str(s)) if op.is_ordering() => {
            parse_date(s).map(|v| v.cmp(t))
        }
        (Literal::Str { num: Some(n), .. }, Val::Num(v)) => v.partial_cmp(n),
        // Ordering a string property against a string literal: rejected at parse time unless the literal is a
        // date or a number, and then a property that is neither does not match.
        (Literal::Str { .. }, _) if op.is_ordering() => None,
        (Literal::Str { text, .. }, value) => {
            return match with_text(value, |s| ci_eq(s, text)) {
                Some(equal) => equal == (op == Op::Eq),
                None => false,
            };
        }
    };
    match op {
        Op::Eq => ordering == Some(Ordering::Equal),
        Op::Ne => ordering != Some(Ordering::Equal),
        Op::Gt => ordering == Some(Ordering::Greater),
        Op::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => ordering == Some(Ordering::Less),
        Op::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        Op::Sw | Op::Ew | Op::So => false,
    }
}

/// `sw`, `ew` and `so`: case-insensitive prefix, suffix and substring tests on the property's text.
fn text_compare(op: Op, lit: &Literal, value: Val<'_>) -> bool {
    let Literal::Str { lower, .. } = lit else {
        return false;
    };
    with_text(value, |s| {
        let s = s.to_lowercase();
        match op {
            Op::Sw => s.starts_with(lower.as_str()),
            Op::Ew => s.ends_with(lower.as_str()),
            _ => s.contains(lower.as_str()),
        }
    })
    .unwrap_or(false)
}

/// Runs `f` on the text form of a value; `None` for null.
fn with_text<T>(value: Val<'_>, f: impl FnOnce(&str) -> T) -> Option<T> {
    match value {
        Val::Str(s) => Some(f(s)),
        Val::Time(t) => Some(f(&format_ts(t))),
        Val::Bool(b) => Some(f(if b { "true" } else { "false" })),
        Val::Num(n) => Some(f(&n.to_string())),
        Val::Null => None,
    }
}

fn ci_eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}
