//! Reading a filter: the text is cut into tokens, parsed into a tree with `and` binding tighter than `or`, checked
//! against the entity's properties and operand types, and runs of `eq` on one property are folded into set probes.

use std::collections::HashSet;

use super::{Comparison, FilterError, Literal, Node, Op, err};
use crate::time::parse_date;

/// Parses a non-blank filter whose property paths `known` accepts into its optimized tree.
pub(super) fn expression(input: &str, known: fn(&[String]) -> bool) -> Result<Node, FilterError> {
    let mut parser = Parser {
        tokens: tokenize(input)?,
        pos: 0,
        known,
    };
    let root = parser.expr()?;
    if let Some(tok) = parser.tokens.get(parser.pos) {
        return err(format!(
            "unexpected {} after the end of the expression",
            tok.describe()
        ));
    }
    Ok(optimize(root))
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
        self.joined("or", Parser::and, Node::Or)
    }

    fn and(&mut self) -> Result<Node, FilterError> {
        self.joined("and", Parser::primary, Node::And)
    }

    /// `item (keyword item)*`, the shape both `or` and `and` have.
    fn joined(
        &mut self,
        keyword: &str,
        item: fn(&mut Parser) -> Result<Node, FilterError>,
        join: fn(Vec<Node>) -> Node,
    ) -> Result<Node, FilterError> {
        let mut terms = vec![item(self)?];
        while self.peek_keyword(keyword) {
            self.pos += 1;
            terms.push(item(self)?);
        }
        Ok(one_or_joined(terms, join))
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

pub(super) fn is_path(word: &str) -> bool {
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
            one_or_joined(rest, Node::Or)
        }
        other => other,
    }
}

/// A single term stands alone instead of in a one-element `or`/`and`: a folded run of `eq` is then the bare set
/// probe.
fn one_or_joined(mut terms: Vec<Node>, join: fn(Vec<Node>) -> Node) -> Node {
    if terms.len() == 1 {
        terms.swap_remove(0)
    } else {
        join(terms)
    }
}
