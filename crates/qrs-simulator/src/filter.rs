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

use std::collections::HashSet;
use std::fmt;

use jiff::Timestamp;

use crate::time::parse_date;

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
        let tokens = tokenize(input)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            known: R::known_path,
        };
        let root = parser.expr()?;
        if let Some(tok) = parser.tokens.get(parser.pos) {
            return err(format!(
                "unexpected {} after the end of the expression",
                tok.describe()
            ));
        }
        Ok(Some(Filter {
            root: optimize(root),
        }))
    }

    pub(crate) fn matches(&self, record: &dyn Record) -> bool {
        eval(&self.root, record)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Quoted(String),
    Word(String),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open => "'('".to_string(),
            Token::Close => "')'".to_string(),
            Token::Quoted(s) => format!("string '{s}'"),
            Token::Word(w) => format!("'{w}'"),
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut text = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    if c == '\'' {
                        if chars.peek().map(|&(_, n)| n) == Some('\'') {
                            chars.next();
                            text.push('\'');
                        } else {
                            closed = true;
                            break;
                        }
                    } else {
                        text.push(c);
                    }
                }
                if !closed {
                    return err(format!("unterminated string starting at position {start}"));
                }
                tokens.push(Token::Quoted(text));
            }
            _ => {
                let mut end = input.len();
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '\'' {
                        end = i;
                        break;
                    }
                    chars.next();
                }
                tokens.push(Token::Word(input[start..end].to_string()));
            }
        }
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------------------------
// Parser

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    known: fn(&[String]) -> bool,
}

impl Parser {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn next(&mut self) -> Option<Token> {
        let tok = self.tokens.get(self.pos).cloned();
        if tok.is_some() {
            self.pos += 1;
        }
        tok
    }

    fn expr(&mut self) -> Result<Node, FilterError> {
        let mut terms = vec![self.and()?];
        while self.peek_keyword("or") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.swap_remove(0)
        } else {
            Node::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Node, FilterError> {
        let mut terms = vec![self.primary()?];
        while self.peek_keyword("and") {
            self.pos += 1;
            terms.push(self.primary()?);
        }
        Ok(if terms.len() == 1 {
            terms.swap_remove(0)
        } else {
            Node::And(terms)
        })
    }

    fn primary(&mut self) -> Result<Node, FilterError> {
        match self.next() {
            None => err("unexpected end of the expression, expected a property name"),
            Some(Token::Open) => {
                let inner = self.expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    Some(tok) => err(format!("expected ')' but found {}", tok.describe())),
                    None => err("missing ')'"),
                }
            }
            Some(Token::Word(word)) => self.comparison(word),
            Some(tok) => err(format!(
                "expected a property name but found {}",
                tok.describe()
            )),
        }
    }

    fn comparison(&mut self, property: String) -> Result<Node, FilterError> {
        if !is_path(&property) {
            return err(format!("'{property}' is not a property name"));
        }
        let path: Vec<String> = property.split('.').map(str::to_ascii_lowercase).collect();
        if !(self.known)(&path) {
            return err(format!("unknown property '{property}'"));
        }
        let op = match self.next() {
            Some(Token::Word(w)) => match Op::parse(&w) {
                Some(op) => op,
                None => return err(format!("unknown operator '{w}' after '{property}'")),
            },
            Some(tok) => {
                return err(format!(
                    "expected an operator after '{property}' but found {}",
                    tok.describe()
                ));
            }
            None => return err(format!("expected an operator after '{property}'")),
        };
        let lit = match self.next() {
            Some(Token::Quoted(text)) => string_literal(text),
            Some(Token::Word(w)) => bare_literal(&w)?,
            Some(tok) => {
                return err(format!(
                    "expected a value after '{}' but found {}",
                    op.name(),
                    tok.describe()
                ));
            }
            None => return err(format!("expected a value after '{property} {}'", op.name())),
        };
        check_operand(op, &lit, &property)?;
        Ok(Node::Cmp(Comparison { path, op, lit }))
    }
}

fn is_path(word: &str) -> bool {
    !word.is_empty()
        && word.split('.').all(|seg| {
            let mut chars = seg.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn string_literal(text: String) -> Literal {
    let time = parse_date(&text);
    let num = text.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    Literal::Str {
        lower: text.to_lowercase(),
        text,
        time,
        num,
    }
}

fn bare_literal(word: &str) -> Result<Literal, FilterError> {
    match word.to_ascii_lowercase().as_str() {
        "true" => return Ok(Literal::Bool(true)),
        "false" => return Ok(Literal::Bool(false)),
        "null" => return Ok(Literal::Null),
        _ => {}
    }
    if uuid::Uuid::try_parse(word).is_ok() {
        return Ok(Literal::Str {
            text: word.to_string(),
            lower: word.to_ascii_lowercase(),
            time: None,
            num: None,
        });
    }
    match word.parse::<f64>() {
        Ok(n)
            if n.is_finite()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            Ok(Literal::Num(n))
        }
        _ => err(format!(
            "'{word}' is not a valid value; quote strings and dates with '...'"
        )),
    }
}

fn check_operand(op: Op, lit: &Literal, property: &str) -> Result<(), FilterError> {
    if op.is_ordering() {
        let ok = match lit {
            Literal::Num(_) => true,
            Literal::Str { time, num, .. } => time.is_some() || num.is_some(),
            Literal::Bool(_) | Literal::Null => false,
        };
        if !ok {
            return err(format!(
                "operator '{}' on '{property}' needs a number or a date; it is not supported for strings, GUIDs, booleans or null",
                op.name()
            ));
        }
    }
    if op.is_text() && !matches!(lit, Literal::Str { .. }) {
        return err(format!(
            "operator '{}' on '{property}' needs a quoted string",
            op.name()
        ));
    }
    Ok(())
}

/// Folds runs of plain-string `eq` comparisons on one property inside an `or` into a set probe.
fn optimize(node: Node) -> Node {
    match node {
        Node::And(terms) => Node::And(terms.into_iter().map(optimize).collect()),
        Node::Or(terms) => {
            let mut sets: Vec<(Vec<String>, HashSet<String>)> = Vec::new();
            let mut rest = Vec::new();
            for term in terms.into_iter().map(optimize) {
                match term {
                    Node::Cmp(Comparison {
                        path,
                        op: Op::Eq,
                        lit:
                            Literal::Str {
                                lower,
                                time: None,
                                num: None,
                                ..
                            },
                    }) => match sets.iter_mut().find(|(p, _)| *p == path) {
                        Some((_, set)) => {
                            set.insert(lower);
                        }
                        None => sets.push((path, HashSet::from([lower]))),
                    },
                    other => rest.push(other),
                }
            }
            rest.extend(
                sets.into_iter()
                    .map(|(path, set)| Node::InSet { path, set }),
            );
            if rest.len() == 1 {
                rest.swap_remove(0)
            } else {
                Node::Or(rest)
            }
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation

fn eval(node: &Node, record: &dyn Record) -> bool {
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
            Val::Time(t) => set.contains(&crate::time::format_ts(t).to_lowercase()),
            Val::Num(_) | Val::Bool(_) | Val::Null => false,
        }),
    }
}

fn compare(op: Op, lit: &Literal, value: Val<'_>) -> bool {
    use std::cmp::Ordering;

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
        Val::Time(t) => Some(f(&crate::time::format_ts(t))),
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

// ---------------------------------------------------------------------------------------------------------------
// orderby

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

    fn cmp_total(&self, other: &SortKey) -> std::cmp::Ordering {
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
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
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

// ---------------------------------------------------------------------------------------------------------------
// JSON records (for small collections rendered as JSON first)

impl Record for serde_json::Value {
    fn known_path(_path: &[String]) -> bool {
        true
    }

    fn visit(&self, path: &[String], f: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        visit_json(self, path, f)
    }
}

fn visit_json(
    value: &serde_json::Value,
    path: &[String],
    f: &mut dyn FnMut(Val<'_>) -> bool,
) -> bool {
    use serde_json::Value;
    match (value, path.split_first()) {
        (Value::Array(items), _) => items.iter().any(|item| visit_json(item, path, f)),
        (Value::Object(map), Some((head, rest))) => {
            match map.iter().find(|(k, _)| k.eq_ignore_ascii_case(head)) {
                Some((_, v)) => visit_json(v, rest, f),
                None => f(Val::Null),
            }
        }
        (Value::Object(_), None) => false,
        (_, Some(_)) | (Value::Null, None) => f(Val::Null),
        (Value::Bool(b), None) => f(Val::Bool(*b)),
        (Value::Number(n), None) => f(Val::Num(n.as_f64().unwrap_or(f64::NAN))),
        (Value::String(s), None) => match parse_date(s) {
            // Only zoned timestamps are dates in rendered entities; anything else stays a string.
            Some(t) if s.ends_with('Z') => f(Val::Time(t)),
            _ => f(Val::Str(s)),
        },
    }
}

#[cfg(test)]
mod tests;
