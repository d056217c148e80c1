//! Before a template is accepted: its tokens counted (operators a tag, `elif`s, nesting), then its syntax tree
//! walked, refusing the constructs that build without a hook to bound them, with the line.

use super::*;

/// The longest a string or list repeated between constants (`"-" * 40`) may be.
pub(super) const CONSTANT_REPEAT_LIMIT: usize = 1024;
/// Why `source` cannot be a template, if it uses something that could build without bound. A template that
/// does not parse is left to the environment, which names the error.
// SyntaxConfig is a unit struct only while minijinja's custom_syntax feature is off; default() builds it either way.
#[allow(clippy::default_constructed_unit_structs)]
pub fn refusal(source: &str) -> Option<String> {
    if let Err(why) = chains(source) {
        return Some(why);
    }
    let tree = parse(
        source,
        "template",
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    )
    .ok()?;
    stmt(&tree)
        .err()
        .or_else(|| shared(&tree).err())
        .or_else(|| joins(&tree).err())
}

/// The most operators, filters, tests, calls and lookups one tag (`{{ }}` or `{% %}`) may chain. minijinja
/// parses `a ~ a ~ a ...`, `x|f|f ...`, `x.a.a ...` or `not not ...` into a tree as deep as the chain is long, and
/// parses, checks, compiles and drops it recursively: a tag of 100,000 `~` (a few hundred kilobytes, within a
/// ConfigMap's 1 MiB) overflowed the stack of the thread reading it and aborted the controller. 2,500 overflowed
/// a test thread's 2 MiB in a debug build; 500 leaves five times that.
pub(super) const CHAIN_LIMIT: usize = 500;

/// Refuses a tag that chains more than [`CHAIN_LIMIT`], a template with more than [`ELIF_LIMIT`] `elif` or blocks
/// nested deeper than [`DEPTH_LIMIT`], reading only its tokens, before anything is parsed. A source that does
/// not tokenize is counted up to its error, and left to the parser to name.
#[allow(clippy::default_constructed_unit_structs)]
pub(super) fn chains(source: &str) -> Result<(), String> {
    use minijinja::machinery::{Token, tokenize};
    let mut count = 0usize;
    let tokens = tokenize(
        source,
        false,
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    );
    // Whole-template counts: `elif`s, blocks open, and whether the tag read is `{% set x %}` (a block) so far.
    let (mut elifs, mut depth, mut first, mut set_block) = (0usize, 0usize, false, false);
    for token in tokens {
        let Ok((token, span)) = token else {
            break;
        };
        let keyword = std::mem::take(&mut first);
        if keyword && let Token::Ident(word) = token {
            let (opens, closes) = nests(word);
            elifs += usize::from(word == "elif");
            set_block = word == "set";
            depth = depth.saturating_sub(usize::from(closes));
            depth += usize::from(opens);
            if elifs > ELIF_LIMIT {
                return refuse(
                    span.start_line,
                    &format!("more than {ELIF_LIMIT} `elif` in one template"),
                    "the controller reads each as a level deeper than the last; test with {% if %} blocks \
                     one after another",
                );
            }
            if depth > DEPTH_LIMIT {
                return refuse(
                    span.start_line,
                    &format!("blocks nested more than {DEPTH_LIMIT} deep"),
                    "the controller reads each as a level deeper than the last; close blocks before opening more",
                );
            }
        }
        match token {
            Token::Assign => set_block = false,
            Token::BlockEnd if std::mem::take(&mut set_block) => depth += 1,
            _ => {}
        }
        match token {
            Token::VariableStart => count = 0,
            Token::BlockStart => {
                count = 0;
                first = true;
            }
            _ => count += usize::from(links(&token)),
        }
        if count > CHAIN_LIMIT {
            return refuse(
                span.start_line,
                &format!(
                    "a tag of more than {CHAIN_LIMIT} operators, filters, tests, calls and lookups"
                ),
                "the controller reads it as a tree as deep as it is long; split it with {% set %}",
            );
        }
    }
    Ok(())
}

/// Whether `token` adds a level to the tree minijinja builds of its tag: an operator, filter, test, call or
/// lookup does; a value, a separator or a closing bracket does not.
fn links(token: &minijinja::machinery::Token<'_>) -> bool {
    use minijinja::machinery::Token;
    match token {
        Token::Ident(word) => matches!(*word, "not" | "and" | "or" | "is" | "in" | "if"),
        Token::TemplateData(_)
        | Token::VariableStart
        | Token::VariableEnd
        | Token::BlockStart
        | Token::BlockEnd
        | Token::Str(_)
        | Token::String(_)
        | Token::Int(_)
        | Token::Int128(_)
        | Token::Float(_)
        | Token::Comma
        | Token::Colon
        | Token::Assign
        | Token::BracketClose
        | Token::ParenClose
        | Token::BraceClose => false,
        _ => true,
    }
}

/// The most `elif` one template may hold: minijinja reads an `elif` as an `if` inside the `else` of the one
/// before, recursing once for each with no guard, and checks, walks and drops the tree recursively:
/// `{% if 1 %}` and 100,000 `{% elif 1 %}` (a megabyte, within a ConfigMap) overflowed the stack.
pub(super) const ELIF_LIMIT: usize = 100;
/// How deep blocks (`if`, `for`, `with`, `filter`, `autoescape`, `{% set x %}`...) may nest in one template.
pub(super) const DEPTH_LIMIT: usize = 32;

/// Whether the tag keyword `word` opens a block (set only as `{% set x %}`, counted at the tag's end) and whether
/// it closes one.
pub(super) fn nests(word: &str) -> (bool, bool) {
    match word {
        "if" | "for" | "with" | "filter" | "autoescape" | "macro" | "call" | "block" => {
            (true, false)
        }
        _ => (false, word.starts_with("end")),
    }
}

/// Refuses what could build a value holding another many times over: each `{% set a = [a, a] %}` doubles a
/// value's size as it is printed, compared or sorted while its memory barely grows, so forty of them make a
/// comparison that never ends (minijinja compares item by item). A list or map literal may hold the context's
/// values and what is computed from them, but nothing the template built from a literal before (a name bound
/// by set, with or for to such a value, or `loop`); `batch` may not fill and `map` may not take a default.
pub(super) fn shared(tree: &ast::Stmt<'_>) -> Result<(), String> {
    let built = built_names(tree, |b, built| holds(b.value, built, true));
    each_expr(tree, &mut |e| match e {
        ast::Expr::List(_) | ast::Expr::Map(_) if holds(e, &built, false) => refuse(
            line_of(e),
            "a list or map holding a value the template built from another list or map",
            "repeated, it builds values without a limit; build lists from the context's values",
        ),
        ast::Expr::Filter(f) if f.name == "batch" && f.args.len() > 1 => refuse(
            f.span().start_line,
            "batch with a fill value",
            "it repeats a value without a limit",
        ),
        ast::Expr::Filter(f)
            if f.name == "map"
                && f.args
                    .iter()
                    .any(|a| matches!(a, ast::CallArg::Kwarg("default", _))) =>
        {
            refuse(
                f.span().start_line,
                "map with a default",
                "it repeats a value without a limit",
            )
        }
        _ => Ok(()),
    })
}

/// Filters whose result is text, a number or a list of new strings: whatever their input holds, it holds no
/// other value.
pub(super) const FLAT_FILTERS: [&str; 21] = [
    "join",
    "string",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "escape",
    "e",
    "safe",
    "replace",
    "indent",
    "split",
    "lines",
    "length",
    "count",
    "round",
    "abs",
    "int",
    "float",
    "sum",
];

/// Whether the value of `e` may hold a value the template built from a list or map literal: a name in `built`,
/// or (when `literals`) a literal whose items are not all constants. Text, numbers and booleans hold nothing.
pub(super) fn holds(e: &ast::Expr<'_>, built: &HashSet<&str>, literals: bool) -> bool {
    use ast::Expr;
    let any = |list: &[Expr<'_>]| list.iter().any(|i| holds(i, built, literals));
    match e {
        Expr::Var(v) => built.contains(v.id),
        Expr::List(l) => (literals && l.as_const().is_none()) || any(&l.items),
        Expr::Map(m) => (literals && m.as_const().is_none()) || any(&m.keys) || any(&m.values),
        Expr::Filter(f) if FLAT_FILTERS.contains(&f.name) => false,
        Expr::Filter(f) => {
            f.expr.as_ref().is_some_and(|i| holds(i, built, literals))
                || call_args(&f.args, built, literals)
        }
        Expr::GetAttr(g) => holds(&g.expr, built, literals),
        Expr::GetItem(g) => holds(&g.expr, built, literals),
        Expr::IfExpr(i) => {
            holds(&i.true_expr, built, literals)
                || i.false_expr
                    .as_ref()
                    .is_some_and(|x| holds(x, built, literals))
        }
        Expr::Call(c) => holds(&c.expr, built, literals) || call_args(&c.args, built, literals),
        Expr::Slice(s) => holds(&s.expr, built, literals),
        // Constants, arithmetic, comparisons and tests: numbers, booleans or short constant text.
        _ => false,
    }
}

pub(super) fn call_args(list: &[ast::CallArg<'_>], built: &HashSet<&str>, literals: bool) -> bool {
    list.iter().any(|arg| match arg {
        ast::CallArg::Pos(e)
        | ast::CallArg::Kwarg(_, e)
        | ast::CallArg::PosSplat(e)
        | ast::CallArg::KwargSplat(e) => holds(e, built, literals),
    })
}

pub(super) fn line_of(e: &ast::Expr<'_>) -> u16 {
    match e {
        ast::Expr::List(l) => l.span().start_line,
        ast::Expr::Map(m) => m.span().start_line,
        _ => 0,
    }
}

pub(super) fn refuse(line: u16, what: &str, why: &str) -> Result<(), String> {
    Err(format!(
        "line {line}: {what} is not allowed in notification templates ({why})"
    ))
}

pub(super) fn stmts(list: &[ast::Stmt<'_>]) -> Result<(), String> {
    list.iter().try_for_each(stmt)
}

pub(super) fn stmt(node: &ast::Stmt<'_>) -> Result<(), String> {
    use ast::Stmt;
    match node {
        Stmt::Template(t) => stmts(&t.children),
        Stmt::EmitExpr(e) => expr(&e.expr),
        Stmt::EmitRaw(_) => Ok(()),
        Stmt::ForLoop(f) => {
            if f.recursive {
                return refuse(
                    f.span().start_line,
                    "a recursive loop",
                    "its output is built outside the message's limit",
                );
            }
            expr(&f.target)?;
            expr(&f.iter)?;
            f.filter_expr.as_ref().map_or(Ok(()), expr)?;
            stmts(&f.body)?;
            stmts(&f.else_body)
        }
        Stmt::IfCond(c) => {
            expr(&c.expr)?;
            stmts(&c.true_body)?;
            stmts(&c.false_body)
        }
        Stmt::WithBlock(w) => {
            for (target, value) in &w.assignments {
                expr(target)?;
                expr(value)?;
            }
            stmts(&w.body)
        }
        Stmt::Set(s) => {
            expr(&s.target)?;
            expr(&s.expr)
        }
        Stmt::SetBlock(s) => refuse(
            s.span().start_line,
            "{% set %}...{% endset %}",
            "what it captures is built outside the message's limit; use {% set x = ... %}",
        ),
        Stmt::AutoEscape(a) => {
            expr(&a.enabled)?;
            stmts(&a.body)
        }
        Stmt::FilterBlock(f) => refuse(
            f.span().start_line,
            "{% filter %}",
            "what it captures is built outside the message's limit; apply the filter to a value",
        ),
        Stmt::Do(d) => call(&d.call),
        #[allow(unreachable_patterns)]
        _ => refuse(0, "this statement", "not known to be bounded"),
    }
}

/// A constant operand: its length if it is text or a list, or None for a number.
pub(super) enum Constant {
    Sized(usize),
    Number(Option<usize>),
}

pub(super) fn constant(node: &ast::Expr<'_>) -> Option<Constant> {
    match node {
        ast::Expr::Const(c) => Some(match c.value.as_str() {
            Some(s) => Constant::Sized(s.len()),
            None if c.value.kind() == ValueKind::Number => {
                Constant::Number(usize::try_from(c.value.clone()).ok())
            }
            None => Constant::Sized(c.value.len().unwrap_or(1)),
        }),
        ast::Expr::List(l) if l.as_const().is_some() => Some(Constant::Sized(l.items.len())),
        _ => None,
    }
}

pub(super) fn binop(b: &ast::Spanned<ast::BinOp<'_>>) -> Result<(), String> {
    use ast::BinOpKind;
    let line = b.span().start_line;
    let (left, right) = (constant(&b.left), constant(&b.right));
    // `~` and `+` are checked with what the template binds: see joins.
    match b.op {
        BinOpKind::Mul => match (left, right) {
            (Some(Constant::Number(_)), Some(Constant::Number(_))) => Ok(()),
            (Some(Constant::Sized(len)), Some(Constant::Number(Some(n))))
            | (Some(Constant::Number(Some(n))), Some(Constant::Sized(len)))
                if len.saturating_mul(n) <= CONSTANT_REPEAT_LIMIT =>
            {
                Ok(())
            }
            _ => refuse(
                line,
                "`*` other than between number constants or a short repeat such as \"-\" * 40",
                "it repeats text or lists without a limit",
            ),
        },
        _ => Ok(()),
    }?;
    expr(&b.left)?;
    expr(&b.right)
}

pub(super) fn args(list: &[ast::CallArg<'_>]) -> Result<(), String> {
    list.iter().try_for_each(|arg| match arg {
        ast::CallArg::Pos(e)
        | ast::CallArg::Kwarg(_, e)
        | ast::CallArg::PosSplat(e)
        | ast::CallArg::KwargSplat(e) => expr(e),
    })
}

pub(super) fn call(c: &ast::Spanned<ast::Call<'_>>) -> Result<(), String> {
    match c.identify_call() {
        ast::CallType::Function(name) if !FUNCTIONS.contains(&name) => {
            return refuse(
                c.span().start_line,
                &format!("the function `{name}`"),
                "only range() is available",
            );
        }
        ast::CallType::Function(_) => {}
        ast::CallType::Method(on, _) | ast::CallType::Object(on) => expr(on)?,
        #[allow(unreachable_patterns)]
        _ => return refuse(c.span().start_line, "this call", "not known to be bounded"),
    }
    args(&c.args)
}

pub(super) fn expr(node: &ast::Expr<'_>) -> Result<(), String> {
    use ast::Expr;
    match node {
        Expr::Var(_) | Expr::Const(_) => Ok(()),
        Expr::Slice(s) => refuse(
            s.span().start_line,
            "a slice",
            "it copies text or lists outside the message's limit; use |first, |last or |batch",
        ),
        Expr::UnaryOp(u) => expr(&u.expr),
        Expr::BinOp(b) => binop(b),
        Expr::Compare(c) => {
            expr(&c.expr)?;
            c.ops.iter().try_for_each(|op| expr(&op.expr))
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr)?;
            expr(&i.true_expr)?;
            i.false_expr.as_ref().map_or(Ok(()), expr)
        }
        Expr::Filter(f) => {
            let known = TEXT_FILTERS
                .iter()
                .chain(&VALUE_FILTERS)
                .chain(&GROWING_FILTERS)
                .any(|n| *n == f.name);
            if !known {
                return refuse(
                    f.span().start_line,
                    &format!("the filter `{}`", f.name),
                    "not one of the filters known to be bounded; see docs/resource.md",
                );
            }
            f.expr.as_ref().map_or(Ok(()), expr)?;
            args(&f.args)
        }
        Expr::Test(t) => {
            if !TESTS.contains(&t.name) && !TEXT_TESTS.contains(&t.name) {
                return refuse(
                    t.span().start_line,
                    &format!("the test `{}`", t.name),
                    "not one of the tests available; see docs/resource.md",
                );
            }
            expr(&t.expr)?;
            args(&t.args)
        }
        Expr::GetAttr(g) => expr(&g.expr),
        Expr::GetItem(g) => {
            expr(&g.expr)?;
            expr(&g.subscript_expr)
        }
        Expr::Call(c) => call(c),
        Expr::List(l) => l.items.iter().try_for_each(expr),
        Expr::Map(m) => m.keys.iter().chain(&m.values).try_for_each(expr),
        #[allow(unreachable_patterns)]
        _ => refuse(0, "this expression", "not known to be bounded"),
    }
}
