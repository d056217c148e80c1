//! Joining with `~` and `+`: allowed between the site's data, constants and filters on those, refused when an
//! operand is a value the template built, and at most [`JOIN_LIMIT`] to a template.

use super::*;

/// The most `~` and `+` (other than a sum with a number constant) one template may hold. Each joins values that
/// exist already (the site's data, the template's constants, a filter's result charged as it was built), and
/// minijinja cannot charge what it makes, so the count bounds it: one expression joins at most 17 such values.
/// The largest is a summary's seat list printed as text, which escapes its strings: 200 seats whose names are
/// 511 characters of four bytes, each printed as ten, about a megabyte. Seventeen of them joined in
/// one expression peak at 27 MiB (measured by the test below; 65 of them, the limit before, peaked at 106 MiB of
/// a pod's 128). Which operands are lists is not known before rendering, so they are bounded by their number.
pub(super) const JOIN_LIMIT: usize = 16;

/// Filters whose result is a number or a boolean, whatever their input.
pub(super) const NUMBER_FILTERS: [&str; 8] = [
    "length", "count", "int", "float", "round", "abs", "sum", "bool",
];

/// Filters whose result's items are items of their input (or pairs of a map's keys and values, or one item).
pub(super) const ITEM_FILTERS: [&str; 14] = [
    "sort",
    "reverse",
    "unique",
    "list",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "dictsort",
    "items",
    "first",
    "last",
    "min",
    "max",
];

/// What `loop` tells that is a number or a boolean (its `previtem` and `nextitem` are items of what it walks).
pub(super) const LOOP_COUNTERS: [&str; 9] = [
    "index",
    "index0",
    "revindex",
    "revindex0",
    "length",
    "first",
    "last",
    "depth",
    "depth0",
];

/// Refuses `~` and `+` that could grow text a template keeps: `{% set a = a ~ a %}` doubles it each time, so a
/// few dozen statements fill the controller's memory in one step each, which neither the fuel nor the budget
/// sees. An operand may be the site's data, a constant, a number, or a filter applied to those (a filter is
/// charged each time it runs), but nothing the template built: a name set (with set, with or for) to anything
/// else than the site's data, a constant or a number, what is computed from such a name, a list or map literal,
/// or a function's result. And a template holds at most [`JOIN_LIMIT`] of them, so that even a long chain over
/// the largest of the site's values stays bounded.
pub(super) fn joins(tree: &ast::Stmt<'_>) -> Result<(), String> {
    // `loop` is built by every loop; what it counts is allowed where it is read (see plain).
    let built = built_names(tree, |b, built| {
        if b.each {
            !each_plain(b.value, built)
        } else {
            !plain(b.value, built)
        }
    });
    let mut count = 0usize;
    each_expr(tree, &mut |e| {
        let ast::Expr::BinOp(b) = e else {
            return Ok(());
        };
        let what = match b.op {
            ast::BinOpKind::Concat => "`~`",
            // A number on either side: the sum is a number or an error, never a longer string or list.
            ast::BinOpKind::Add if !number_constant(&b.left) && !number_constant(&b.right) => "`+`",
            _ => return Ok(()),
        };
        let line = b.span().start_line;
        count += 1;
        if count > JOIN_LIMIT {
            return refuse(
                line,
                &format!("more than {JOIN_LIMIT} `~` and `+` in one template"),
                "each joins text or lists that minijinja does not count; write the parts one after another, \
                 {{ a }}{{ b }}, or use [a, b]|join",
            );
        }
        match joinable(&b.left, &built).and_then(|()| joinable(&b.right, &built)) {
            Ok(()) => Ok(()),
            Err(operand) => refuse(
                line,
                &format!("{what} on {operand}, which the template built,"),
                "repeated, it doubles text or lists without a limit; join only the site's data and constants, \
                 write the parts one after another, {{ a }}{{ b }}, or use [a, b]|join",
            ),
        }
    })
}

pub(super) fn number_constant(e: &ast::Expr<'_>) -> bool {
    matches!(constant(e), Some(Constant::Number(_)))
}

/// `loop.index` and the like: a number or a boolean.
pub(super) fn loop_counter(e: &ast::Expr<'_>) -> bool {
    matches!(e, ast::Expr::GetAttr(g)
        if matches!(&g.expr, ast::Expr::Var(v) if v.id == "loop") && LOOP_COUNTERS.contains(&g.name))
}

/// Whether `e` may be an operand of `~` or `+`: what it is made of exists already, or is charged each time it is
/// built. The operand that is not, named, if any. A `~` or `+` operand is checked on its own.
pub(super) fn joinable(e: &ast::Expr<'_>, built: &HashSet<&str>) -> Result<(), String> {
    use ast::Expr;
    let args = |list: &[ast::CallArg<'_>]| {
        list.iter().try_for_each(|arg| match arg {
            ast::CallArg::Pos(e)
            | ast::CallArg::Kwarg(_, e)
            | ast::CallArg::PosSplat(e)
            | ast::CallArg::KwargSplat(e) => joinable(e, built),
        })
    };
    match e {
        Expr::Var(v) if built.contains(v.id) => Err(format!("`{}`", v.id)),
        _ if loop_counter(e) => Ok(()),
        Expr::Var(_) | Expr::Const(_) | Expr::Test(_) | Expr::Compare(_) | Expr::UnaryOp(_) => {
            Ok(())
        }
        Expr::GetAttr(g) => joinable(&g.expr, built),
        Expr::GetItem(g) => joinable(&g.expr, built),
        Expr::Filter(f) if NUMBER_FILTERS.contains(&f.name) => Ok(()),
        Expr::Filter(f) => {
            f.expr.as_ref().map_or(Ok(()), |i| joinable(i, built))?;
            args(&f.args)
        }
        Expr::IfExpr(i) => {
            joinable(&i.true_expr, built)?;
            i.false_expr.as_ref().map_or(Ok(()), |x| joinable(x, built))
        }
        Expr::BinOp(b) => match b.op {
            ast::BinOpKind::ScAnd | ast::BinOpKind::ScOr | ast::BinOpKind::Mul => {
                joinable(&b.left, built)?;
                joinable(&b.right, built)
            }
            // `~` and `+` are checked on their own; the rest make numbers or booleans.
            _ => Ok(()),
        },
        Expr::List(l) if l.as_const().is_some() => Ok(()),
        Expr::Map(m) if m.as_const().is_some() => Ok(()),
        Expr::List(_) | Expr::Map(_) => Err("a list or map literal".into()),
        Expr::Call(_) => Err("a function's result".into()),
        _ => Err("this value".into()),
    }
}

/// Whether a name bound to `e` holds only what exists without the template (the site's data, a constant) or a
/// number: then `~` may read it any number of times. A filter's result is charged once, when it is built, so a
/// name keeping one is built, and so is one keeping what `~` or `+` made.
pub(super) fn plain(e: &ast::Expr<'_>, built: &HashSet<&str>) -> bool {
    use ast::Expr;
    match e {
        Expr::Var(v) => !built.contains(v.id),
        _ if loop_counter(e) => true,
        Expr::Const(_) | Expr::Test(_) | Expr::Compare(_) | Expr::UnaryOp(_) => true,
        Expr::GetAttr(g) => plain(&g.expr, built),
        Expr::GetItem(g) => plain(&g.expr, built),
        Expr::Filter(f) => NUMBER_FILTERS.contains(&f.name),
        Expr::IfExpr(i) => {
            plain(&i.true_expr, built) && i.false_expr.as_ref().is_none_or(|x| plain(x, built))
        }
        Expr::BinOp(b) => match b.op {
            ast::BinOpKind::Concat => false,
            ast::BinOpKind::Add => number_constant(&b.left) || number_constant(&b.right),
            ast::BinOpKind::ScAnd | ast::BinOpKind::ScOr | ast::BinOpKind::Mul => {
                plain(&b.left, built) && plain(&b.right, built)
            }
            _ => true,
        },
        Expr::List(l) => l.as_const().is_some(),
        Expr::Map(m) => m.as_const().is_some(),
        _ => false,
    }
}

/// Whether each item of what a loop walks is plain: the items of plain data, numbers from `range`, the items a
/// sorting or selecting filter keeps of such, the pieces `split` or `lines` cut from plain text. Not `batch`,
/// whose one group may hold all of a long range.
pub(super) fn each_plain(e: &ast::Expr<'_>, built: &HashSet<&str>) -> bool {
    use ast::Expr;
    let plain_args = |list: &[ast::CallArg<'_>]| {
        list.iter().all(|arg| match arg {
            ast::CallArg::Pos(e)
            | ast::CallArg::Kwarg(_, e)
            | ast::CallArg::PosSplat(e)
            | ast::CallArg::KwargSplat(e) => plain(e, built),
        })
    };
    match e {
        _ if plain(e, built) => true,
        Expr::Call(c) => matches!(c.identify_call(), ast::CallType::Function("range")),
        Expr::List(l) => l.items.iter().all(|i| plain(i, built)),
        Expr::Filter(f) if ITEM_FILTERS.contains(&f.name) => {
            f.expr.as_ref().is_some_and(|i| each_plain(i, built)) && plain_args(&f.args)
        }
        // map(attribute=...) keeps an attribute of each item; map with a filter builds new ones.
        Expr::Filter(f) if f.name == "map" => {
            f.expr.as_ref().is_some_and(|i| each_plain(i, built))
                && f.args
                    .iter()
                    .all(|a| matches!(a, ast::CallArg::Kwarg("attribute", v) if plain(v, built)))
        }
        Expr::Filter(f) if matches!(f.name, "split" | "lines") => {
            f.expr.as_ref().is_some_and(|i| plain(i, built)) && plain_args(&f.args)
        }
        _ => false,
    }
}

/// The names `target` binds (`a`, or `a, b` when unpacking).
pub(super) fn names<'s>(target: &ast::Expr<'s>, out: &mut Vec<&'s str>) {
    match target {
        ast::Expr::Var(v) => out.push(v.id),
        ast::Expr::List(l) => l.items.iter().for_each(|item| names(item, out)),
        _ => {}
    }
}

/// A name a statement binds, with the expression it is bound to: its value (set, with) or, for a loop, what the
/// loop walks (`each`: the name takes each item in turn).
pub(super) struct Binding<'a, 's> {
    pub(super) name: &'s str,
    pub(super) value: &'a ast::Expr<'s>,
    pub(super) each: bool,
}

/// The names `tree` binds to what the template built, by `builds` (whether a binding's value is built, given the
/// names known built so far), `loop` among them: repeated until no binding adds one, since a name may be bound to
/// another bound later in the text.
pub(super) fn built_names<'s>(
    tree: &ast::Stmt<'s>,
    builds: impl Fn(&Binding<'_, 's>, &HashSet<&'s str>) -> bool,
) -> HashSet<&'s str> {
    let mut bound = Vec::new();
    bindings(tree, &mut bound);
    let mut built: HashSet<&str> = HashSet::from(["loop"]);
    loop {
        let before = built.len();
        for b in &bound {
            if !built.contains(b.name) && builds(b, &built) {
                built.insert(b.name);
            }
        }
        if built.len() == before {
            return built;
        }
    }
}

/// Every name a statement binds (set, with, for) with the expression it is bound to.
pub(super) fn bindings<'a, 's>(node: &'a ast::Stmt<'s>, out: &mut Vec<Binding<'a, 's>>) {
    use ast::Stmt;
    let bind = |target: &ast::Expr<'s>, value: &'a ast::Expr<'s>, each: bool, out: &mut Vec<_>| {
        let mut bound = Vec::new();
        names(target, &mut bound);
        out.extend(bound.into_iter().map(|name| Binding { name, value, each }));
    };
    let body = |list: &'a [Stmt<'s>], out: &mut Vec<_>| list.iter().for_each(|s| bindings(s, out));
    match node {
        Stmt::Template(t) => body(&t.children, out),
        Stmt::ForLoop(f) => {
            bind(&f.target, &f.iter, true, out);
            body(&f.body, out);
            body(&f.else_body, out);
        }
        Stmt::IfCond(c) => {
            body(&c.true_body, out);
            body(&c.false_body, out);
        }
        Stmt::WithBlock(w) => {
            for (target, value) in &w.assignments {
                bind(target, value, false, out);
            }
            body(&w.body, out);
        }
        Stmt::Set(s) => bind(&s.target, &s.expr, false, out),
        Stmt::AutoEscape(a) => body(&a.body, out),
        _ => {}
    }
}

/// Every expression of the template's statements, outermost first, until `f` refuses one; not the targets of
/// set, with and for, which name values rather than build them.
pub(super) fn each_expr<'s>(
    node: &ast::Stmt<'s>,
    f: &mut dyn FnMut(&ast::Expr<'s>) -> Result<(), String>,
) -> Result<(), String> {
    use ast::Stmt;
    let body = |list: &[Stmt<'s>], f: &mut dyn FnMut(&ast::Expr<'s>) -> Result<(), String>| {
        list.iter().try_for_each(|s| each_expr(s, f))
    };
    match node {
        Stmt::Template(t) => body(&t.children, f),
        Stmt::EmitExpr(e) => visit(&e.expr, f),
        Stmt::ForLoop(l) => {
            visit(&l.iter, f)?;
            if let Some(e) = &l.filter_expr {
                visit(e, f)?;
            }
            body(&l.body, f)?;
            body(&l.else_body, f)
        }
        Stmt::IfCond(c) => {
            visit(&c.expr, f)?;
            body(&c.true_body, f)?;
            body(&c.false_body, f)
        }
        Stmt::WithBlock(w) => {
            for (_, value) in &w.assignments {
                visit(value, f)?;
            }
            body(&w.body, f)
        }
        Stmt::Set(s) => visit(&s.expr, f),
        Stmt::AutoEscape(a) => {
            visit(&a.enabled, f)?;
            body(&a.body, f)
        }
        Stmt::Do(d) => {
            visit(&d.call.expr, f)?;
            visit_args(&d.call.args, f)
        }
        _ => Ok(()),
    }
}

pub(super) fn visit_args<'s>(
    list: &[ast::CallArg<'s>],
    f: &mut dyn FnMut(&ast::Expr<'s>) -> Result<(), String>,
) -> Result<(), String> {
    list.iter().try_for_each(|arg| match arg {
        ast::CallArg::Pos(e)
        | ast::CallArg::Kwarg(_, e)
        | ast::CallArg::PosSplat(e)
        | ast::CallArg::KwargSplat(e) => visit(e, f),
    })
}

/// `e` and every expression inside it, outermost first.
pub(super) fn visit<'s>(
    e: &ast::Expr<'s>,
    f: &mut dyn FnMut(&ast::Expr<'s>) -> Result<(), String>,
) -> Result<(), String> {
    use ast::Expr;
    f(e)?;
    let some = |e: &Option<Expr<'s>>, f: &mut dyn FnMut(&Expr<'s>) -> Result<(), String>| {
        e.as_ref().map_or(Ok(()), |e| visit(e, f))
    };
    match e {
        Expr::Slice(s) => {
            visit(&s.expr, f)?;
            some(&s.start, f)?;
            some(&s.stop, f)?;
            some(&s.step, f)
        }
        Expr::UnaryOp(u) => visit(&u.expr, f),
        Expr::BinOp(b) => {
            visit(&b.left, f)?;
            visit(&b.right, f)
        }
        Expr::Compare(c) => {
            visit(&c.expr, f)?;
            c.ops.iter().try_for_each(|op| visit(&op.expr, f))
        }
        Expr::IfExpr(i) => {
            visit(&i.test_expr, f)?;
            visit(&i.true_expr, f)?;
            some(&i.false_expr, f)
        }
        Expr::Filter(x) => {
            some(&x.expr, f)?;
            visit_args(&x.args, f)
        }
        Expr::Test(t) => {
            visit(&t.expr, f)?;
            visit_args(&t.args, f)
        }
        Expr::GetAttr(g) => visit(&g.expr, f),
        Expr::GetItem(g) => {
            visit(&g.expr, f)?;
            visit(&g.subscript_expr, f)
        }
        Expr::Call(c) => {
            visit(&c.expr, f)?;
            visit_args(&c.args, f)
        }
        Expr::List(l) => l.items.iter().try_for_each(|i| visit(i, f)),
        Expr::Map(m) => m.keys.iter().chain(&m.values).try_for_each(|i| visit(i, f)),
        _ => Ok(()),
    }
}
